"""The package's shape: kinds of data are decided in modalities/ only, and no module imports itself back."""
import ast
from pathlib import Path

import vaekit

SRC = Path(vaekit.__file__).parent
KINDS = {"image", "text", "tabular"}


def modules() -> dict[str, ast.Module]:
    """Dotted module name -> its parsed source, for every module of the package."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def _is_kind(node) -> bool:
    """An expression that holds a kind's name: `kind`, `x.kind`, `args.kind`, `run.kind`."""
    return ((isinstance(node, ast.Name) and node.id == "kind")
            or (isinstance(node, ast.Attribute) and node.attr == "kind"))


def _names_a_kind(node) -> bool:
    values = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return any(isinstance(v, ast.Constant) and v.value in KINDS for v in values)


def kind_comparisons(tree: ast.Module) -> list[int]:
    """Lines that compare a kind with a kind's name (`kind == "text"`, `run.kind in ("image", ...)`)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(map(_is_kind, sides)) and any(map(_names_a_kind, sides)):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and any(map(_names_a_kind, node.keys)):
            lines.append(node.lineno)  # {"image": ..., "text": ...}[kind]: the same ladder as a table
    return lines


def test_no_kind_is_compared_by_name_outside_modalities():
    found = {name: lines for name, tree in modules().items()
             if not name.startswith("vaekit.modalities") and (lines := kind_comparisons(tree))}
    assert not found, f"ask vaekit.modalities.get(kind) instead of comparing names: {found}"


def test_the_check_finds_a_kind_comparison():
    tree = ast.parse('if run.kind == "text":\n    pass\nx = {"image": 1}[kind]\nok = kind == other\n')
    assert kind_comparisons(tree) == [1, 3]


def imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The package's modules that `name` imports, at its top level or inside functions."""
    package = name if (SRC.parent / name.replace(".", "/") / "__init__.py").exists() else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = (base + "." + node.module if node.module else base) if node.level else node.module or ""
            for alias in node.names:
                target = f"{module}.{alias.name}"
                found.add(target if target in known else module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_no_import_cycles_inside_the_package():
    """Counting imports inside functions too: a cycle dodged by a late import is still a cycle. The
    package's own __init__ (which re-exports the public API) is left out: nothing may import it back."""
    found = modules()
    known = set(found)
    graph = {name: imports(name, tree, known) - {"vaekit"} for name, tree in found.items() if name != "vaekit"}
    for name, targets in graph.items():
        # A package's __init__ that gathers its own submodules is the package itself, not a cycle.
        graph[name] = {t for t in targets if not (name.startswith(t + ".") and t != "vaekit")}
    assert cycles(graph) == []
    back = sorted(name for name, tree in found.items() if name != "vaekit" and "vaekit" in imports(name, tree, known))
    assert back == [], f"modules importing the package's __init__ back: {back}"


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
