"""The packages of `stream` in layers: imports point down the layers, never up, and no modules
import each other in a circle. Read from the source, so a new import that breaks either
fails here, naming it.

Imports under `if TYPE_CHECKING:` are left out: they are for type checkers and never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

STREAM = Path(__file__).resolve().parents[1] / "stream"

# lowest first; a package may import its own layer's and lower layers' packages
LAYERS = [
    {"lifecycle", "wallclock", "collector"},  # the core, and what every driver shares
    {"inputs", "config", "model"},  # outside bytes in, settings, the model's plain numbers
    {"kafka"},  # Kafka plumbing
    {"worker", "replay"},  # the drivers (replay holds rebuild, which writes the worker's state)
    {"report"},  # reads what replay leaves
    {"cli", "__main__"},  # the command on top
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(STREAM.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """The `stream` modules (or packages) `path` imports when it runs."""
    tree = ast.parse(path.read_text())
    checking_only = {
        id(node)
        for guard in ast.walk(tree)
        if isinstance(guard, ast.If) and "TYPE_CHECKING" in ast.unparse(guard.test)
        for statement in guard.body
        for node in ast.walk(statement)
    }
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in checking_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("stream"):
                found |= {f"{target}.{alias.name}" for alias in node.names} | {target}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("stream")}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in STREAM.rglob("*.py")}
    return {
        name: {target for target in _runtime_imports(path) if target in modules and target != name}
        for name, path in modules.items()
    }


def _layer(module: str) -> int:
    package = module.split(".")[1] if "." in module else module
    return next(number for number, packages in enumerate(LAYERS) if package in packages)


def test_every_package_is_in_a_layer():
    packages = {path.stem if path.is_file() else path.name for path in STREAM.iterdir()}
    packages -= {"__init__", "__pycache__"}
    assert packages <= set().union(*LAYERS), f"put {packages - set().union(*LAYERS)} in a layer"


def test_imports_point_down_the_layers():
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if "." in module
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_modules_import_each_other_in_a_circle():
    graph = _graph()
    # a module's package __init__ is not a dependency of its own: Python imports it first
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    circles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []
