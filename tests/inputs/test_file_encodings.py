"""Exports in the encodings shops save them in (`--encoding`), and bytes that are not valid in
a file's encoding: a rejection of their row naming the line and the byte, never a traceback.

The commands run in this process (`stream.cli.main`): what a user types, without the cost of
a Python start per test.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.cli import main

ROWS = [
    ("zoë", "z1", "2025-03-01T10:00:00Z", "25.00"),
    ("ann", "a1", "2025-03-02T10:00:00Z", "10.00"),
    ("müller", "m1", "2025-03-03T10:00:00Z", "7.50"),
    ("zoë", "z2", "2025-03-04T10:00:00Z", "5.00"),
]
CSV = "customer_id,order_id,occurred_at,amount,currency\r\n" + "".join(
    f"{customer},{order},{when},{amount},EUR\r\n" for customer, order, when, amount in ROWS
)
SHOPIFY = Path(__file__).parents[1] / "data" / "shopify-orders.csv"


def _states(tmp_path: Path, path: Path, *options: str) -> dict[str, dict]:
    out = tmp_path / f"{path.name}.states.jsonl"
    code = main(
        ["replay", str(path), "--jobs", "1", "--states", str(out), "--rejects", str(out) + ".r", *options]
    )
    assert code == 0
    return {s["customer_id"]: s for s in map(orjson.loads, out.read_bytes().splitlines())}


@pytest.mark.parametrize(
    ("encoding", "bom"), [("cp1252", b""), ("latin-1", b""), ("utf-16", b""), ("utf-8", b"\xef\xbb\xbf")]
)
def test_an_export_in_its_encoding_gives_what_the_same_export_in_utf8_gives(tmp_path, encoding, bom):
    plain = tmp_path / "utf8.csv"
    plain.write_bytes(CSV.encode("utf-8"))
    other = tmp_path / f"{encoding}.csv"
    other.write_bytes(bom + CSV.encode(encoding))
    expected = _states(tmp_path, plain, "--format", "csv")
    assert set(expected) == {"zoë", "ann", "müller"}
    assert _states(tmp_path, other, "--format", "csv", "--encoding", encoding) == expected


def test_a_cp1252_export_read_as_utf8_rejects_the_rows_with_other_bytes_naming_line_byte_and_option(
    tmp_path, capsys
):
    path = tmp_path / "excel.csv"
    path.write_bytes(CSV.encode("cp1252"))
    assert main(["check", str(path), "--format", "csv"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{path}:2: line 2: byte 0xEB in field 1 is not valid utf-8" in err  # the ë of zoë
    assert f"{path}:4: line 4: byte 0xFC in field 1 is not valid utf-8" in err  # the ü of müller
    assert "--encoding" in err
    assert "4 lines: 1 valid events, 3 rejected (row 3)" in err


def test_a_shopify_export_saved_by_excel_is_read_with_encoding_cp1252(tmp_path, capsys):
    text = SHOPIFY.read_text("utf-8").replace("Ann Archer", "Ann Ärcher").replace("Mug", "Müsli")
    excel = tmp_path / "excel.csv"
    excel.write_bytes(text.encode("cp1252"))
    utf8 = tmp_path / "utf8.csv"
    utf8.write_bytes(text.encode("utf-8"))

    assert main(["check", str(excel), "--format", "shopify"]) == 1
    err = capsys.readouterr().err
    assert "byte 0xC4" in err and "byte 0xFC" in err and "Traceback" not in err
    expected = _states(tmp_path, utf8, "--format", "shopify")
    assert _states(tmp_path, excel, "--format", "shopify", "--encoding", "cp1252") == expected


def test_an_unknown_encoding_stops_at_start_naming_the_option(tmp_path, capsys):
    path = tmp_path / "o.csv"
    path.write_text(CSV)
    assert main(["check", str(path), "--format", "csv", "--encoding", "klingon"]) == 2
    assert "--encoding: unknown encoding `klingon`" in capsys.readouterr().err


def test_utf16_without_a_byte_order_mark_is_one_clear_rejection_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "o.csv"
    path.write_bytes(CSV.encode("utf-16-le"))
    assert main(["check", str(path), "--format", "csv", "--encoding", "utf-16"]) == 2
    err = capsys.readouterr().err
    assert "cannot be read as utf-16" in err and "utf-16-le" in err and "Traceback" not in err
    assert main(["check", str(path), "--format", "csv", "--encoding", "utf-16-le"]) == 0


def test_an_amount_of_400_digits_is_a_rejection_naming_the_column(tmp_path, capsys):
    path = tmp_path / "o.csv"
    path.write_text(CSV + f"bob,b1,2025-03-05T10:00:00Z,{'9' * 400},EUR\r\n")
    assert main(["check", str(path), "--format", "csv"]) == 1
    err = capsys.readouterr().err
    assert (
        f"{path}:6: line 6: column `amount`: amount `{'9' * 40}… (400 characters)` is over the limit" in err
    )


def test_a_gzip_file_that_is_not_gzip_stops_with_one_line(tmp_path, capsys):
    path = tmp_path / "o.jsonl.gz"
    path.write_bytes(b"not gzip at all")
    assert main(["check", str(path)]) == 2
    assert "cannot be read" in capsys.readouterr().err
