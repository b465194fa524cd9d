"""
Both delivery paths of the loader modules: a non-editable pip install (entry
point) and a checkout in file_roots synced with saltutil.sync_all. Here the
pip install into a fresh virtualenv (from PyPI), checked with ``salt-call
--local`` and ``salt-run -d``; the file_roots path on the fleet is in
tests/integration/test_packaging.py.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

IGNORE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")


def run(cmd, **kwargs):
    # Run outside the checkout so that nothing is imported from it by accident.
    kwargs.setdefault("cwd", "/")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory):
    """A fresh virtualenv with salt-kiosk installed from a copy of the checkout, NOT editable."""
    base = tmp_path_factory.mktemp("pkg")
    src = base / "src"
    shutil.copytree(REPO_ROOT, src, ignore=IGNORE)
    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", str(src)])
    shutil.rmtree(src)  # nothing may point back at the source tree
    return venv


def test_non_editable_install_exposes_modules(installed_venv, tmp_path):
    location = run(
        [
            str(installed_venv / "bin" / "python"),
            "-c",
            "import salt_kiosk, os; print(os.path.dirname(salt_kiosk.__file__))",
        ]
    ).strip()
    assert location.startswith(str(installed_venv))
    assert os.path.isfile(os.path.join(location, "_modules", "kiosk.py"))
    assert os.path.isfile(os.path.join(location, "_runners", "kiosk_power.py"))

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "minion").write_text(f"root_dir: {tmp_path}/root\nfile_client: local\nid: pkg-test\n")
    (conf / "master").write_text(f"root_dir: {tmp_path}/mroot\n")

    doc = run([str(installed_venv / "bin" / "salt-call"), "-c", str(conf), "--local", "--out=json", "sys.doc", "kiosk"])
    assert "kiosk.md5" in doc and "CLI Example" in doc

    runner_doc = run([str(installed_venv / "bin" / "salt-run"), "-c", str(conf), "-d", "kiosk_power"])
    assert "kiosk_power.targets" in runner_doc

    md5 = run(
        [
            str(installed_venv / "bin" / "salt-call"),
            "-c",
            str(conf),
            "--local",
            "--out=json",
            "kiosk.md5",
            str(conf / "minion"),
        ]
    )
    assert json.loads(md5)["local"] == hashlib.md5((conf / "minion").read_bytes()).hexdigest()
