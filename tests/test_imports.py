"""The package's modules form layers: a lower module never imports a higher one, so there is no import circle.

Every import counts, at module level or inside a function (a deferred import still ties the two modules together),
as does ``importlib.import_module("hf_dgm...")`` with a literal name. A module's own package ``__init__`` is not an
edge: Python imports it first anyway."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hf_dgm"


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules that module `name` (at `path`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from pkg import module` imports pkg.module; `from module import name` imports module
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return {m for m in found if m in known and m != name and not name.startswith(f"{m}.")}


def import_graph(package: Path) -> dict[str, set[str]]:
    names = module_names(package)
    return {name: imported_modules(name, path, set(names)) for name, path in names.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (a list of modules whose first is also its last), or None."""
    state = {}  # name -> "open" (on the current path) or "done"

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [node])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [])
            if cycle:
                return cycle
    return None


def test_no_import_circle_in_the_package():
    graph = import_graph(PACKAGE)
    assert len(graph) > 30 and "hf_dgm.hub" in graph["hf_dgm.modeling_utils"]  # the parse sees deferred imports
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_check_finds_a_circle(tmp_path):
    """A package where a -> b (deferred, inside a function) -> c (via importlib) -> a: the check names it."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import f\n")
    (package / "b.py").write_text("def f():\n    from . import c\n")
    (package / "c.py").write_text("import importlib\n\nimportlib.import_module('pkg.a')\n")
    (package / "d.py").write_text("from pkg.a import f\n")
    cycle = find_cycle(import_graph(package))
    assert cycle is not None and set(cycle) == {"pkg.a", "pkg.b", "pkg.c"} and cycle[0] == cycle[-1]


@pytest.mark.parametrize("low", ["hf_dgm.file_utils", "hf_dgm.modeling_utils", "hf_dgm.image_processing"])
def test_low_modules_import_nothing_above_them(low):
    """The bottom layers: files, then the models' shared rules, then image conversion (each bundled into the code
    uploads carry, where only its neighbours in the bundle exist)."""
    allowed = {
        "hf_dgm.file_utils": set(),
        "hf_dgm.modeling_utils": {"hf_dgm.file_utils", "hf_dgm.hub"},  # push_to_hub hands over to hub
        "hf_dgm.image_processing": {"hf_dgm.file_utils"},
    }
    assert import_graph(PACKAGE)[low] <= allowed[low]
