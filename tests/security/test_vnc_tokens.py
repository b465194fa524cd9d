"""
Security issue 13, finding 6 (token files): ``kiosk_vnc.tokens`` wrote into
any ``out_dir``, including the master's ``master.d``, where a token file is
read as Salt configuration. Now files go only inside ``kiosk:vnc_token_dir``
(``out_dir`` must resolve inside it) and never into a Salt configuration
directory, even when ``kiosk:vnc_token_dir`` points there.
"""

import os

import pytest

from salt_kiosk import vnc
from salt_kiosk.errors import KioskInputError


REFUSED = "Passed invalid arguments"


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
        assert REFUSED in ret.stdout, ret  # salt-run exits 0 on SaltInvocationError
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
            assert REFUSED in ret.stdout, (bad, ret)
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


def test_base_inside_a_salt_config_dir_is_refused(kstore, tmp_path):
    conf = tmp_path / "conf"
    (conf / "master.d").mkdir(parents=True)
    opts = {"conf_file": str(conf / "master"), "kiosk": {"vnc_token_dir": str(conf / "master.d")}}
    with pytest.raises(KioskInputError) as exc:
        vnc.tokens(opts, kstore)
    assert "kiosk:vnc_token_dir" in str(exc.value) and "Salt configuration directory" in str(exc.value)
    assert not list((conf / "master.d").iterdir())
    # A base that merely contains the config directory cannot be used to reach into it.
    opts["kiosk"]["vnc_token_dir"] = str(tmp_path)
    with pytest.raises(KioskInputError, match="Salt configuration directory"):
        vnc.tokens(opts, kstore, out_dir=str(conf / "master.d"))
    for base in ("/etc/salt", "/etc/salt/master.d"):
        with pytest.raises(KioskInputError, match="Salt configuration directory"):
            vnc.tokens({"conf_file": str(conf / "master"), "kiosk": {"vnc_token_dir": base}}, kstore)


def test_missing_base_names_the_key(kstore):
    with pytest.raises(KioskInputError, match="kiosk:vnc_token_dir is not set"):
        vnc.tokens({"conf_file": "/etc/salt/master", "kiosk": {}}, kstore)
    with pytest.raises(KioskInputError, match="kiosk:vnc_token_dir 'relative' is not an absolute"):
        vnc.tokens({"conf_file": "/etc/salt/master", "kiosk": {"vnc_token_dir": "relative"}}, kstore)
