"""Where a verb's result goes: a file the user named (`--out`), never written over without `overwrite`,
or a default inside the run. The modalities write their outputs (image grids, sentences, rows) through
a `Destination`, so every kind of data keeps the same rules about the user's files."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import VaekitError
from .runs import atomic_write


def output_path(path: str | None, default: Path, overwrite: bool, companions=lambda out: []) -> Path:
    """Where to write a result: never over an existing file the user named, unless told to; nor over
    the files written beside it (`companions(out)`: e.g. embed's OUT_latent.png, sample's OUT.npy).
    Without a name, `default` or the first of default-2, default-3, ... that is free with its companions:
    an earlier result (or the training's own plots/samples.png) is never replaced."""
    out = Path(path) if path else _free(default, companions)
    if path and out.is_dir():
        raise VaekitError(f"{out} is a folder; --out takes a file name here")
    if path and not overwrite:
        for target in [out, *companions(out)]:
            if target.exists():
                raise VaekitError(f"{target} exists; pass --overwrite to replace it"
                                  + (f" (it would be written beside {out})" if target != out else ""))
    if not out.parent.is_dir():
        raise VaekitError(f"folder {out.parent} does not exist")
    return out


def _free(default: Path, companions) -> Path:
    out, i = default, 1
    while any(p.exists() for p in [out, *companions(out)]):
        i += 1
        out = default.with_name(f"{default.stem}-{i}{default.suffix}")
    return out


@dataclass
class Destination:
    """A verb's --out and --overwrite, and where it reports what it wrote."""

    out: str | None = None
    overwrite: bool = False
    echo: Callable[[str], None] = field(default=print)

    def path(self, default: Path, companions=lambda out: []) -> Path:
        """The file to write: --out, else `default` (inside the run); checked before any work is done."""
        return output_path(self.out, default, self.overwrite, companions)

    def lines(self, lines: list[str], header: str | None = None) -> None:
        """Print lines (sentences); with --out also write them, one per line (never over a user's file)."""
        out = self.path(Path(self.out)) if self.out else None  # refused before printing
        for line in lines:
            self.echo(line)
        if out:
            atomic_write(out, ("\n".join(([header] if header else []) + lines) + "\n").encode())
            self.echo(f"wrote {out}")
