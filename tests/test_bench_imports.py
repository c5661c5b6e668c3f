"""Every name a benchmark script imports from vaekit exists: a module moved by a restructuring must not
leave bench/ broken until someone runs a long benchmark (bench/variations.py and bench/compression.py
imported modules that issue 24 had moved, found only when they were run)."""
import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def vaekit_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vaekit":
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "vaekit":
                    yield alias.name, None


@pytest.mark.parametrize("script", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_what_a_benchmark_imports_from_vaekit_exists(script):
    missing = []
    for module, name in vaekit_imports(script):
        try:
            found = importlib.import_module(module)
        except ImportError:
            missing.append(module)
            continue
        if name is not None and not hasattr(found, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{script.name} imports what vaekit no longer has: {missing}"
