"""
Security issue 13, finding 6 (token files): ``kiosk_vnc.tokens`` wrote into
any ``out_dir``, including the master's ``master.d``, where a token file is
read as Salt configuration. Now files go only inside ``kiosk:vnc_token_dir``
(``out_dir`` must resolve inside it) and never into a Salt configuration
directory, even when ``kiosk:vnc_token_dir`` points there.

Here the library on an SQLite store; the runner on the fleet is in
tests/integration/security/test_vnc_tokens.py.
"""

import pytest

from salt_kiosk import vnc
from salt_kiosk.errors import KioskInputError


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
