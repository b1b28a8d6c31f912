"""The versions of faust-streaming, mode and aiokafka the worker's corrections were written for.

The worker replaces or reads private parts of them (docs/architecture.md lists each one,
and docs/field-notes.md why): faust's consumer bookkeeping (`_committed_offset`, `_acked`,
`_gap`, `_new_offset`, `_commit_offsets`), its producer buffer, its table restore, aiokafka's
partition state and mode's service flags. A release that renames or reworks any of them
would not fail loudly; the guarantees would just stop holding. So the worker checks, at
start, that it runs on the versions those corrections were tested with, and stops otherwise
with what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

# distribution -> the release line the corrections were tested on (a version starting so)
TESTED = {
    "faust-streaming": "0.15.",
    "mode-streaming": "0.7.",
    "aiokafka": "0.14.",
}


class UntestedVersion(RuntimeError):
    """A dependency whose private parts the worker corrects is at a version it was not
    tested with."""


def check_versions(version: Callable[[str], str] | None = None) -> None:
    """Raise UntestedVersion naming each dependency not on its tested release line
    (`version`: a distribution's installed version; importlib.metadata's by default)."""
    version = version or metadata.version
    wrong = []
    for distribution, line in TESTED.items():
        try:
            found = version(distribution)
        except metadata.PackageNotFoundError:
            found = "not installed"
        if not found.startswith(line):
            wrong.append(f"{distribution} {found} (tested: {line}x)")
    if wrong:
        raise UntestedVersion(
            "the worker corrects private parts of its Kafka libraries and was tested only with "
            f"other versions than these: {', '.join(wrong)}; install the tested ones "
            "(pip install -e . keeps them within pyproject.toml's ranges)"
        )
