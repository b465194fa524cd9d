"""
The verified delivery library: md5 while streaming, atomic install, backup and
restore. Keeping the owner of a replaced file needs root (chown): that test is
in tests/functional/test_delivery.py.
"""

import functools
import hashlib
import http.server
import os
import threading

import pytest

from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import delivery


def md5_of(data):
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "src.bin"
    path.write_bytes(b"release-1\n" * 100_000)
    return path


@pytest.fixture
def web(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def leftovers(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_new_file_is_delivered_with_its_md5(tmp_path, src):
    dest = tmp_path / "out" / "app.bin"
    dest.parent.mkdir()
    ret = delivery.deliver(str(src), str(dest), md5_of(src.read_bytes()))
    assert ret["changed"] is True
    assert ret["bytes"] == src.stat().st_size
    assert dest.read_bytes() == src.read_bytes()
    assert dest.stat().st_mode & 0o777 == 0o644
    assert ret["backup"] is None
    assert leftovers(dest.parent) == []


def test_same_md5_transfers_nothing(tmp_path, src):
    dest = tmp_path / "app.bin"
    dest.write_bytes(src.read_bytes())
    before = dest.stat().st_ino
    ret = delivery.deliver("/nonexistent/never-read", str(dest), md5_of(src.read_bytes()))
    assert ret["changed"] is False and ret["bytes"] == 0
    assert dest.stat().st_ino == before


def test_mismatch_leaves_dest_untouched_and_names_both_md5s(tmp_path, src):
    dest = tmp_path / "app.bin"
    dest.write_bytes(b"old content")
    wrong = "0" * 32
    with pytest.raises(delivery.Md5Mismatch) as err:
        delivery.deliver(str(src), str(dest), wrong)
    assert wrong in str(err.value) and md5_of(src.read_bytes()) in str(err.value)
    assert dest.read_bytes() == b"old content"
    assert leftovers(tmp_path) == []
    assert not os.path.exists(str(dest) + delivery.PREV_SUFFIX)


def test_previous_copy_kept_and_restored(tmp_path, src):
    dest = tmp_path / "app.conf"
    dest.write_bytes(b"v1")
    os.chmod(dest, 0o600)
    ret = delivery.deliver(str(src), str(dest), md5_of(src.read_bytes()))
    assert ret["backup"] == str(dest) + ".kiosk-prev"
    assert open(ret["backup"], "rb").read() == b"v1"
    assert dest.stat().st_mode & 0o777 == 0o600  # the replaced file's mode is kept
    back = delivery.restore(str(dest))
    assert dest.read_bytes() == b"v1" and back["md5"] == md5_of(b"v1")
    delivery.restore(str(dest))  # twice: swaps back
    assert dest.read_bytes() == src.read_bytes()


def test_mode_is_applied(tmp_path, src):
    dest = tmp_path / "run.sh"
    ret = delivery.deliver(str(src), str(dest), md5_of(src.read_bytes()), mode="0750")
    assert dest.stat().st_mode & 0o777 == 0o750 and ret["changed"]
    again = delivery.deliver(str(src), str(dest), md5_of(src.read_bytes()), mode=644)
    assert again["changes"] == {"mode": "0644"} and dest.stat().st_mode & 0o777 == 0o644


def test_http_source_streams_and_checks(tmp_path, web):
    root, base = web
    (root / "ui.css").write_bytes(b"body{}" * 1000)
    dest = tmp_path / "ui.css"
    ret = delivery.deliver(f"{base}/ui.css", str(dest), md5_of(b"body{}" * 1000))
    assert ret["changed"] and dest.read_bytes() == b"body{}" * 1000
    with pytest.raises(delivery.KioskDeliveryError, match="HTTP 404"):
        delivery.deliver(f"{base}/missing.css", str(tmp_path / "x.css"), "a" * 32)
    assert not (tmp_path / "x.css").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"md5": "abc"}, "md5 'abc' is not an md5 checksum: expected 32 hexadecimal digits"),
        ({"md5": "g" * 32}, "is not an md5 checksum"),
        ({"dest": "relative/app.bin"}, "is relative: expected an absolute file path"),
        ({"dest": "/tmp/../etc/passwd"}, "contains '..'"),
        ({"dest": "/tmp"}, "'/tmp' is a directory"),
        ({"source": "ftp://host/file"}, "unsupported scheme"),
        ({"mode": "rwx"}, "mode 'rwx' is not a file mode"),
        ({"user": "no-such-user-kiosk"}, "user 'no-such-user-kiosk' does not exist"),
    ],
)
def test_bad_input_is_refused_before_anything(tmp_path, src, kwargs, message):
    args = {"source": str(src), "dest": str(tmp_path / "app.bin"), "md5": md5_of(src.read_bytes())}
    args.update(kwargs)
    with pytest.raises(KioskInputError) as err:
        delivery.deliver(**args)
    assert message in str(err.value)
    assert not (tmp_path / "app.bin").exists()


def test_missing_source_and_missing_directory(tmp_path):
    with pytest.raises(delivery.KioskDeliveryError, match="does not exist"):
        delivery.deliver(str(tmp_path / "nope"), str(tmp_path / "a"), "a" * 32)
    with pytest.raises(KioskInputError, match="makedirs=True"):
        delivery.deliver(str(tmp_path / "nope"), str(tmp_path / "sub" / "a"), "a" * 32)
    assert leftovers(tmp_path) == []


def test_plan_reports_without_touching(tmp_path, src):
    dest = tmp_path / "app.bin"
    planned = delivery.plan(str(src), str(dest), md5_of(src.read_bytes()))
    assert planned["changed"] and not dest.exists()
    dest.write_bytes(src.read_bytes())
    assert delivery.plan(str(src), str(dest), md5_of(src.read_bytes()))["changed"] is False


def test_all_digit_md5_read_as_a_number_by_yaml():
    assert delivery.check_md5(12345678901234567890123456789012) == "12345678901234567890123456789012"
