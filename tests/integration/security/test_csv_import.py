"""
Security issue 13, finding 7: ``kiosk_inventory.import_csv`` read any file on
the master and echoed its first line in the header error. Now it reads only
files inside ``kiosk:import_dirs`` (``realpath``-checked, before the file is
opened) or ``salt://`` URLs from the master's file server, and its errors
quote only the offending field, escaped and capped; the header error never
echoes the header.

Here ``salt-run kiosk_inventory.import_csv`` on the fleet's master of masters;
the library tests are in tests/unit/security/test_csv_import.py.
"""

import os
import shutil
import tempfile

import pytest

from tests.conftest import fleet_inventory_csv
from tests.unit.security.test_csv_import import HEADER, SECRET


def _refused(ret):
    """Refused input: salt-run prints the runner's error and exits 1."""
    return ret.returncode == 1 and isinstance(ret.data, dict) and ret.data.get("retcode") == 1 and "error" in ret.data


def _output(ret):
    return f"{ret.stdout}\n{ret.stderr}"


@pytest.fixture
def secret_outside():
    """A secret file outside every configured import directory (and outside pytest's base directory)."""
    folder = tempfile.mkdtemp(prefix="kiosk-secret-")
    path = os.path.join(folder, "db.secret")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(SECRET + "\n")
    yield path
    shutil.rmtree(folder)


@pytest.mark.fleet
def test_files_outside_import_dirs_are_refused_without_reading_them(fleet, fleet_inventory, tmp_path, secret_outside):
    run = fleet.salt_run_cli()
    link = tmp_path / "inventory.csv"
    os.symlink(secret_outside, link)
    for path in (
        secret_outside,
        str(link),
        str(tmp_path / ".." / ".." / ".." / secret_outside.lstrip("/")),
        "/etc/shadow",
    ):
        ret = run.run("kiosk_inventory.import_csv", path)
        text = _output(ret)
        assert _refused(ret), (path, ret)
        assert "outside kiosk:import_dirs" in text, (path, text)
        assert SECRET not in text
    ret = run.run("kiosk_inventory.import_csv", "file:///etc/passwd")
    assert "unsupported scheme" in _output(ret)
    # The master's own config file (inside the test fleet's import directory,
    # the session's pytest directory): refused without a line of it.
    conf_file = fleet.mom.config["conf_file"]
    text = _output(run.run("kiosk_inventory.import_csv", conf_file))
    assert "line 1: bad CSV header" in text or "outside kiosk:import_dirs" in text, text
    with open(conf_file, encoding="utf-8") as handle:
        conf_lines = [line.strip() for line in handle if len(line.strip()) > 12]
    assert conf_lines and not [line for line in conf_lines if line in text]
    assert run.run("kiosk_inventory.list").data == fleet_inventory


@pytest.mark.fleet
def test_errors_never_echo_a_line_of_the_file(fleet, fleet_inventory, tmp_path):
    run = fleet.salt_run_cli()
    # A file inside the import directory that is not an inventory: its first line is a secret.
    secret = tmp_path / "not-a-csv.txt"
    secret.write_text(SECRET + "\nsecond line\n")
    ret = run.run("kiosk_inventory.import_csv", str(secret))
    text = _output(ret)
    assert "line 1: bad CSV header" in text and "1 unknown column(s) at position(s) 1" in text, text
    assert SECRET not in text and "kiosk-db-password" not in text
    # A bad field is quoted escaped and capped, never the whole line.
    long_field = "10.0.0." + "9" * 5000
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + f"E77,kiosk-e77,east,,{long_field},02:00:00:00:0e:77,{SECRET}\n")
    ret = run.run("kiosk_inventory.import_csv", str(bad))
    text = _output(ret)
    assert "line 2, field 'ip'" in text and "5007 characters" in text, text
    assert "9" * 100 not in text
    assert "line 2, field 'vnc_port'" in text
    assert "E77,kiosk-e77" not in text
    assert run.run("kiosk_inventory.list").data == fleet_inventory


@pytest.mark.fleet
def test_salt_url_from_the_masters_file_server(fleet, fleet_inventory, tmp_path):
    root = fleet.mom.config["file_roots"]["base"][0]
    folder = os.path.join(root, "kiosk-security")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "inventory.csv"), "w", encoding="utf-8") as handle:
        handle.write(fleet_inventory_csv().replace("127.0.1.12", "127.0.1.99"))
    run = fleet.salt_run_cli()
    try:
        ret = run.run("kiosk_inventory.import_csv", "salt://kiosk-security/inventory.csv")
        assert ret.returncode == 0, ret
        assert ret.data["updated"] == ["E02"], ret.data
        assert run.run("kiosk_inventory.list", "id:kiosk-e2").data[0]["ip"] == "127.0.1.99"
        for url in (
            "salt://kiosk-security/missing.csv",
            "salt://../../etc/passwd",
            "salt://kiosk-security/../../etc/passwd",
        ):
            ret = run.run("kiosk_inventory.import_csv", url)
            assert _refused(ret) and "salt://" in _output(ret), (url, ret)
            assert "root:" not in _output(ret)
    finally:
        shutil.rmtree(folder)
        restore = tmp_path / "restore.csv"
        restore.write_text(fleet_inventory_csv())
        assert run.run("kiosk_inventory.import_csv", str(restore), "replace=True").returncode == 0
