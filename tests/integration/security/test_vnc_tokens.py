"""
Security issue 13, finding 6 (token files): ``kiosk_vnc.tokens`` wrote into
any ``out_dir``, including the master's ``master.d``, where a token file is
read as Salt configuration. Now files go only inside ``kiosk:vnc_token_dir``
(``out_dir`` must resolve inside it) and never into a Salt configuration
directory, even when ``kiosk:vnc_token_dir`` points there.

Here ``salt-run kiosk_vnc.tokens`` on the fleet's master of masters; the
library tests are in tests/unit/security/test_vnc_tokens.py.
"""

import os

import pytest


def _refused(ret):
    """Refused input: salt-run prints the runner's error and exits 1."""
    return ret.returncode == 1 and isinstance(ret.data, dict) and ret.data.get("retcode") == 1 and "error" in ret.data


def _output(ret):
    return f"{ret.stdout}\n{ret.stderr}"


def _conf_files(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".conf")) if os.path.isdir(folder) else []


@pytest.mark.fleet
def test_tokens_never_go_into_the_masters_config_dir(fleet, fleet_inventory):
    master_d = os.path.join(os.path.dirname(fleet.mom.config["conf_file"]), "master.d")
    created = not os.path.isdir(master_d)
    os.makedirs(master_d, exist_ok=True)
    before = _conf_files(master_d)
    try:
        ret = fleet.salt_run_cli().run("kiosk_vnc.tokens", master_d)
        assert _refused(ret), ret
        text = _output(ret)
        assert "outside kiosk:vnc_token_dir" in text and master_d in text, text
        assert _conf_files(master_d) == before
    finally:
        for name in set(_conf_files(master_d)) - set(before):
            os.remove(os.path.join(master_d, name))  # what the unfixed runner writes there
        if created:
            os.rmdir(master_d)


@pytest.mark.fleet
def test_out_dir_must_resolve_inside_the_configured_base(fleet, fleet_inventory, tmp_path):
    base = fleet.mom.config["kiosk"]["vnc_token_dir"]
    run = fleet.salt_run_cli()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    escape = os.path.join(base, "..", os.path.basename(str(tmp_path)))
    link = os.path.join(base, "link-out")
    os.symlink(str(outside), link)
    inside = os.path.join(base, "east-only")
    os.makedirs(inside, exist_ok=True)
    try:
        for bad in (str(outside), escape, link):
            ret = run.run("kiosk_vnc.tokens", bad)
            assert _refused(ret), (bad, ret)
            assert "outside kiosk:vnc_token_dir" in _output(ret), ret
        assert os.listdir(outside) == []
        # The default is the base itself; a directory inside it is accepted.
        ret = run.run("kiosk_vnc.tokens")
        assert ret.returncode == 0, ret
        assert ret.data["files"]["east"] == os.path.join(os.path.realpath(base), "east.conf")
        ret = run.run("kiosk_vnc.tokens", inside, "campus=east")
        assert ret.returncode == 0, ret
        assert _conf_files(inside) == ["east.conf"]
    finally:
        os.remove(link)
        for name in _conf_files(inside):
            os.remove(os.path.join(inside, name))
        os.rmdir(inside)
