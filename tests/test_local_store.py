"""What a crash leaves of a partition's RocksDB database once its writes skip the log.

The worker's safety argument (stream/worker/tables.py, `skip_write_ahead_log`): a crash loses
a suffix of the writes, never a write without those before it, so the persisted changelog
offset that survives covers only writes that survived too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

WRITER = """
import os, sys
from rocksdict import Options, Rdict
from stream.worker.tables import skip_write_ahead_log

options = Options(raw_mode=True)
options.create_if_missing(True)
db = Rdict(sys.argv[1], options=options)
db.put(b"restored", b"through the log")  # as faust's restore writes
skip_write_ahead_log(db)
for n in range(1000):
    db.put(b"customer-%d" % n, b"x" * 100)
db.put(b"__faust\\0offset__", b"999")
if sys.argv[2] == "close":
    db.close()
os._exit(0)  # no destructor: as a SIGKILL leaves it
"""


def _written(path: Path, ending: str) -> dict[bytes, bytes]:
    subprocess.run([sys.executable, "-c", WRITER, str(path), ending], check=True, timeout=60)
    options = Options(raw_mode=True)
    db = Rdict(str(path), options=options)
    try:
        return dict(db.items())
    finally:
        db.close()


@pytest.mark.parametrize("ending", ["crash", "close"])
def test_writes_past_the_log_survive_a_close_and_a_crash_loses_them_whole(tmp_path: Path, ending: str):
    kept = _written(tmp_path / "db", ending)
    assert kept[b"restored"] == b"through the log"
    customers = [key for key in kept if key.startswith(b"customer-")]
    if ending == "close":
        assert len(customers) == 1000
        assert kept[b"__faust\0offset__"] == b"999"
    else:
        # all or nothing, offset included; in a memtable this small, nothing
        assert customers == []
        assert b"__faust\0offset__" not in kept
