"""
Security issue 13, finding 7: ``kiosk_inventory.import_csv`` read any file on
the master and echoed its first line in the header error. Now it reads only
files inside ``kiosk:import_dirs`` (``realpath``-checked, before the file is
opened) or ``salt://`` URLs from the master's file server, and its errors
quote only the offending field, escaped and capped; the header error never
echoes the header.

Here the library on an SQLite store; the runner on the fleet is in
tests/integration/security/test_csv_import.py.
"""

import os

import pytest

from salt_kiosk import inventory
from salt_kiosk.errors import KioskInputError

SECRET = "kiosk-db-password-9f3e1c27-NEVER-PRINTED"
HEADER = "code,minion_id,campus,groups,ip,mac,vnc_port\n"


def test_import_dirs_must_be_configured(kstore, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text(HEADER + "E01,kiosk-e1,east,,,,\n")
    with pytest.raises(KioskInputError, match="kiosk:import_dirs is not set"):
        inventory.import_source({"kiosk": {}}, kstore, str(path))
    with pytest.raises(KioskInputError, match="kiosk:import_dirs entry 'relative' is not an absolute"):
        inventory.import_source({"kiosk": {"import_dirs": ["relative"]}}, kstore, str(path))
    opts = {"kiosk": {"import_dirs": str(tmp_path)}}
    assert inventory.import_source(opts, kstore, str(path))["added"] == ["E01"]
    with pytest.raises(KioskInputError, match="not an absolute path"):
        inventory.import_source(opts, kstore, "inv.csv")


def test_non_text_and_oversized_files_are_refused_without_echo(kstore, tmp_path):
    opts = {"kiosk": {"import_dirs": [str(tmp_path)]}}
    binary = tmp_path / "binary.csv"
    binary.write_bytes(SECRET.encode() + b"\xff\xfe\x00")
    with pytest.raises(KioskInputError) as exc:
        inventory.import_source(opts, kstore, str(binary))
    assert "not UTF-8 text" in str(exc.value) and SECRET not in str(exc.value)
    nul = tmp_path / "environ"
    nul.write_bytes(b"SECRET=" + SECRET.encode() + b"\x00PATH=/bin\x00")
    with pytest.raises(KioskInputError) as exc:
        inventory.import_source(opts, kstore, str(nul))
    assert "NUL bytes" in str(exc.value) and SECRET not in str(exc.value)
    big = tmp_path / "big.csv"
    with open(big, "wb") as handle:
        handle.truncate(inventory.MAX_CSV_BYTES + 1)
    with pytest.raises(KioskInputError, match="larger than"):
        inventory.import_source(opts, kstore, str(big))
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with pytest.raises(KioskInputError, match="not a regular file"):
        inventory.import_source(opts, kstore, str(fifo))


def test_skip_bad_reports_capped_values_only(kstore, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text(HEADER + "E01,kiosk-e1,east,,,,\n" + f"{SECRET * 3},kiosk-e2,east,,,,\n" + "E03,kiosk-e3\n")
    summary = inventory.import_source({"kiosk": {"import_dirs": [str(tmp_path)]}}, kstore, str(path), skip_bad=True)
    assert summary["added"] == ["E01"]
    code_error, short_row = summary["rejected"]
    assert code_error["field"] == "code" and len(code_error["value"]) <= inventory.SHOWN_MAX + 3
    assert SECRET * 2 not in code_error["error"] and "characters" in code_error["error"]
    assert short_row["field"] == "*" and short_row["value"] == "" and "kiosk-e3" not in short_row["error"]
