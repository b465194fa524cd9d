"""websockify token files, read back with websockify's own token plugin."""

import os

import pytest
from websockify.token_plugins import ReadOnlyTokenFile, TokenFile

from salt_kiosk import inventory, vnc
from salt_kiosk.errors import KioskInputError

CSV = """code,minion_id,campus,groups,ip,mac,vnc_port
E01,kiosk-e1,east,,10.1.0.11,02:00:00:00:0e:01,5900
E02,kiosk-e2,east,,10.1.0.12,02:00:00:00:0e:02,
W01,kiosk-w1,west,,,02:00:00:00:0f:01,5901
W02,kiosk-w2,west,,10.2.0.12,02:00:00:00:0f:02,5902
"""


@pytest.fixture
def fleet_store(kstore, tmp_path):
    path = tmp_path / "inv.csv"
    path.write_text(CSV)
    inventory.import_csv(kstore, str(path))
    return kstore


def test_token_files_per_campus_read_by_websockify(fleet_store, tmp_path):
    out = tmp_path / "tokens"
    out.mkdir()
    ret = vnc.write_tokens(fleet_store, str(out))
    assert sorted(os.listdir(out)) == ["east.conf", "west.conf"]
    assert ret["skipped"] == {"E02": "no VNC port in the inventory", "W01": "no IP address in the inventory"}
    plugin = ReadOnlyTokenFile(str(out))
    assert plugin.lookup("E01") == ["10.1.0.11", "5900"]
    assert plugin.lookup("W02") == ["10.2.0.12", "5902"]
    assert plugin.lookup("E02") is None
    assert TokenFile(str(out / "east.conf")).lookup("E01") == ["10.1.0.11", "5900"]


def test_secret_tokens_and_one_campus(fleet_store, tmp_path):
    ret = vnc.write_tokens(fleet_store, str(tmp_path), campus="west", secret="s3cret")
    token = vnc.token_for("W02", "s3cret")
    assert token.startswith("W02-") and len(token) == 16
    assert ret["tokens"] == {"west": {token: "10.2.0.12:5902"}}
    assert ReadOnlyTokenFile(str(tmp_path / "west.conf")).lookup(token) == ["10.2.0.12", "5902"]
    assert not (tmp_path / "east.conf").exists()


def test_bad_out_dir_and_campus(fleet_store, tmp_path):
    with pytest.raises(KioskInputError, match="does not exist"):
        vnc.write_tokens(fleet_store, str(tmp_path / "missing"))
    with pytest.raises(KioskInputError, match="not an absolute"):
        vnc.write_tokens(fleet_store, "relative/dir")
    with pytest.raises(KioskInputError, match="campus 'north' is unknown"):
        vnc.write_tokens(fleet_store, str(tmp_path), campus="north")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(KioskInputError, match="is not a directory"):
        vnc.write_tokens(fleet_store, str(a_file))


def test_viewer_link_carries_the_token_websockify_reads(fleet_store, tmp_path):
    import urllib.parse

    out = tmp_path / "tokens"
    out.mkdir()
    opts = {"kiosk": {"novnc_url": "https://vnc.hospital.example/vnc.html", "vnc_token_secret": "s3cret"}}
    vnc.write_tokens(fleet_store, str(out), secret="s3cret")
    link = vnc.viewer_link(opts, fleet_store, "E01")
    assert link["kiosk"] == "kiosk-e1" and link["token"] == vnc.token_for("E01", "s3cret")
    url = urllib.parse.urlsplit(link["url"])
    assert (url.scheme, url.netloc, url.path) == ("https", "vnc.hospital.example", "/vnc.html")
    path = urllib.parse.parse_qs(url.query)["path"][0]
    assert path.startswith("websockify?token=")
    assert ReadOnlyTokenFile(str(out)).lookup(path.split("=", 1)[1]) == ["10.1.0.11", "5900"]
    assert vnc.viewer_link(opts, fleet_store, "kiosk-e1") == link


@pytest.mark.parametrize(
    ("novnc_url", "kiosk", "message"),
    [
        (None, "kiosk-e1", "kiosk:novnc_url is not set"),
        ("javascript:alert(1)", "kiosk-e1", "is not accepted: an http:// or https://"),
        ('https://x/"><script>', "kiosk-e1", "is not accepted"),
        ("https://vnc.example/vnc.html", "kiosk-zz", "'kiosk-zz' is not in the inventory"),
        ("https://vnc.example/vnc.html", "kiosk-e2", "kiosk kiosk-e2: vnc_port None"),
    ],
)
def test_viewer_link_refusals(fleet_store, novnc_url, kiosk, message):
    with pytest.raises(KioskInputError, match=message):
        vnc.viewer_link({"kiosk": {"novnc_url": novnc_url}}, fleet_store, kiosk)
