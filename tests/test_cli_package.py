"""The cli/ package: every verb module in it is registered, and every command and sub-command shows its help."""
import argparse
import pkgutil

import pytest

import vaekit.cli
from vaekit.cli import VERBS, build_parser, main

SHARED = {"__main__", "common", "options"}  # modules of the package that are not verbs


def _commands(parser, path=()):
    """Every command path the parser accepts: ("train",), ("train", "image"), ..., ("raters", "export"), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name)
                yield from _commands(sub, (*path, name))


def test_every_verb_module_is_registered():
    modules = {m.name for m in pkgutil.iter_modules(vaekit.cli.__path__)} - SHARED
    assert {verb.__name__.rsplit(".", 1)[1] for verb in VERBS} == modules
    top = {path[0] for path in _commands(build_parser())}
    assert top == modules  # each module registers the verb it is named after


@pytest.mark.parametrize("path", sorted(_commands(build_parser())), ids=" ".join)
def test_every_command_shows_its_help(path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"usage: vaekit {' '.join(path)}") and not err
