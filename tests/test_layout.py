"""The package layout: layers import only downward, no method imports another,
no cycles."""
import ast
from pathlib import Path

import minidr

ROOT = Path(minidr.__file__).parent
# each layer may import itself and the layers before it
LAYERS = ["core", "data", "evaluation", "models", "retrieval", "training", "methods",
          "substrate"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the minidr modules ``path`` imports
    (relative imports resolved)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if module.startswith("minidr"):
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names
                             if (ROOT.parent / f"{module}.{a.name}".replace(".", "/"))
                             .with_suffix(".py").exists())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("minidr"))
    return found


MODULES = {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")
           if p.parent != ROOT or p.name not in ("__init__.py", "__main__.py")}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    assert all(_layer(m) for m in MODULES), [m for m in MODULES if not _layer(m)]


def test_layers_import_only_downward():
    bad = [(m, i) for m, imps in MODULES.items() for i in imps
           if _layer(i) and LAYERS.index(_layer(i)) > LAYERS.index(_layer(m))]
    assert not bad, bad


def test_no_method_imports_another_method():
    bad = [(m, i) for m, imps in MODULES.items() if _layer(m) == "methods"
           for i in imps if _layer(i) == "methods" and i != m and i != "minidr.methods"]
    assert not bad, bad


def test_no_import_cycles():
    graph = {m: {i for i in imps if i in MODULES and i != m}
             for m, imps in MODULES.items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for n in graph[m]:
            assert state.get(n) != 1, f"import cycle: {' -> '.join(stack + [m, n])}"
            if n not in state:
                visit(n, stack + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
