"""faust's, mode's and aiokafka's private parts are used in `stream/worker/faust_internals`
only: a use anywhere else fails here, naming the line. Read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

STREAM = Path(__file__).resolve().parents[2] / "stream"
THE_ONE_PLACE = STREAM / "worker" / "faust_internals"
# public despite the underscore: os._exit, and named tuples' API
NOT_PRIVATE = {"_exit", "_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__") and name not in NOT_PRIVATE


def _uses_of_privates(path: Path) -> list[str]:
    """`x._name` for any x but self and cls, and getattr/setattr/hasattr with "_name"."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            if not (isinstance(base, ast.Name) and base.id in ("self", "cls")):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
        ):
            name = node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and _private(name.value):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def _subclasses_of_faust(path: Path) -> list[str]:
    """Classes deriving from a faust or mode class: their `self._x` are faust's privates."""
    tree = ast.parse(path.read_text())
    from_faust = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").split(".")[0] in ("faust", "mode", "aiokafka")
        for alias in node.names
    } | {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.split(".")[0] in ("faust", "mode", "aiokafka")
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {ast.unparse(base).split(".")[0] for base in node.bases}
            privates = {
                n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute) and _private(n.attr)
            } | {
                n.name
                for n in node.body
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and _private(n.name)
            }
            if bases & from_faust and privates:
                found.append(f"{node.lineno}: {node.name} uses {sorted(privates)}")
    return found


def test_no_module_but_faust_internals_touches_a_private_part():
    offences = []
    for path in sorted(STREAM.rglob("*.py")):
        if THE_ONE_PLACE in path.parents:
            continue
        offences += [
            f"{path.relative_to(STREAM)}: {use}"
            for use in _uses_of_privates(path) + _subclasses_of_faust(path)
        ]
    assert not offences, "private parts used outside stream/worker/faust_internals:\n" + "\n".join(offences)


def test_the_check_finds_a_private_use(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from faust.transport.producer import ProducerBuffer\n"
        "def f(consumer):\n    return consumer._acked, getattr(consumer, '_gap')\n"
        "class B(ProducerBuffer):\n    async def _send_pending(self, fut): ...\n"
    )
    assert len(_uses_of_privates(sample)) == 2
    assert len(_subclasses_of_faust(sample)) == 1
