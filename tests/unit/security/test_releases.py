"""
Security issue 13, release part: the kiosk-side unpacking (findings 4 and 11)
and the master's hop-1 HTTP server (finding 5), through the library on real
files. tests/integration/security/test_releases_fleet.py publishes through the
runner on the fleet.
"""

import hashlib
import http.client
import io
import os
import socket
import tarfile
import urllib.parse

import pytest

from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import release_install
from salt_kiosk.releases import serve


def md5_of(data):
    return hashlib.md5(data).hexdigest()


def write_tar(path, entries, mode="w:gz"):
    """``entries``: (name, kind, payload) with kind file/dir/symlink/hardlink; payload bytes or a link target."""
    with tarfile.open(path, mode) as archive:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            if kind == "dir":
                info.mode = 0o777
            else:
                info.linkname = payload
            archive.addfile(info)
    with open(path, "rb") as handle:
        return md5_of(handle.read())


def install_file(opts, version, path, filename="app.tar.gz"):
    with open(path, "rb") as handle:
        md5 = md5_of(handle.read())
    return release_install.install(opts, version, md5, filename, source=str(path))


def attempt(func, *args):
    """Run ``func``; return the exception it raised (None when it did not)."""
    try:
        func(*args)
    except Exception as exc:  # pylint: disable=broad-except
        return exc
    return None


def old_release_in_place(tmp_path, base):
    """Install 1.0 (bin/app = v1), the release that must stay current."""
    opts = {"kiosk": {"release_dir": str(base)}}
    write_tar(tmp_path / "v1.tar.gz", [("bin/app", "file", b"v1")])
    install_file(opts, "1.0", tmp_path / "v1.tar.gz")
    return opts


def test_finding4_symlink_chain_beyond_path_max_is_refused_before_extraction(tmp_path):
    """
    CVE-2025-4517 pattern: nested directories with symbolic links to them make
    the resolved path exceed PATH_MAX, so os.path.realpath (which the data
    filter relies on) stops resolving; a link through that chain then points
    outside and members are written through it. The validator must refuse the
    archive on its own, whatever this Python's tarfile does.
    """
    outside = tmp_path / "kiosk"
    base = outside / "releases"
    opts = old_release_in_place(tmp_path, base)
    victim = outside / "victim.conf"
    victim.write_bytes(b"original\n")

    # Component length as in CPython's test: the unexpanded names fit in
    # PATH_MAX, the expanded chain does not (staging dir: <base>/.<version>.XXXXXXXX).
    steps = "abcdefghijklmnop"
    max_path = os.pathconf(str(tmp_path), "PC_PATH_MAX")
    dest_len = len(str(base)) + len("/.2.0.") + 8 + 1
    component = "d" * min(255, (max_path - dest_len) // (len(steps) + 1))
    entries, path = [], ""
    for step in steps:
        entries.append((os.path.join(path, component), "dir", None))
        entries.append((os.path.join(path, step), "symlink", component))
        path = os.path.join(path, component)
    linkpath = os.path.join(*steps, "l" * 254)
    entries.append((linkpath, "symlink", os.path.join(*[".."] * len(steps))))
    # <staging>/escape -> <staging>/.. /.. = the kiosk directory above the release dir
    entries.append(("escape", "symlink", os.path.join(linkpath, "..", "..")))
    entries.append(("victimlink", "hardlink", os.path.join("escape", "victim.conf")))
    entries.append(("victimlink", "file", b"overwritten\n"))
    entries.append(("escape/newfile", "file", b"written outside\n"))
    write_tar(tmp_path / "evil.tar.gz", entries)

    error = attempt(install_file, opts, "2.0", tmp_path / "evil.tar.gz")

    assert not (outside / "newfile").exists(), "a member was written outside the release directory"
    assert victim.read_bytes() == b"original\n", "a file outside the release directory was overwritten"
    assert sorted(os.listdir(base)) == [".kiosk-last-attempt.json", "1.0", "current"]
    state = release_install.current(opts)
    assert state["version"] == "1.0" and (base / "current" / "bin" / "app").read_bytes() == b"v1"
    assert state["last_attempt"]["ok"] is False and state["last_attempt"]["version"] == "2.0"
    # Refused by the validator (not by this Python's tarfile), naming the
    # member and why.
    assert isinstance(error, release_install.UnsafeArchive), repr(error)
    assert "through the symbolic link 'a'" in str(error) and linkpath in str(error), str(error)


def test_finding5_release_server_binds_configured_address_and_serves_each_path_once(tmp_path):
    """
    Hop 1: the server never binds to all addresses, hands each relay its own
    random path that works for one GET, serves nothing else, and is gone when
    staging ends.
    """
    release = tmp_path / "app.tar.gz"
    release.write_bytes(b"release body" * 100)
    opts = {"interface": "0.0.0.0", "kiosk": {"release_serve_address": "127.0.0.1"}}
    with serve.serve_file(opts, str(release), ["relay-a", "relay-b"]) as served:
        urls = served["urls"]
        assert set(urls) == {"relay-a", "relay-b"} and urls["relay-a"] != urls["relay-b"]
        parsed = {name: urllib.parse.urlsplit(url) for name, url in urls.items()}
        assert {p.hostname for p in parsed.values()} == {"127.0.0.1"}
        port = parsed["relay-a"].port

        def get(path):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        assert get(parsed["relay-a"].path) == (200, release.read_bytes())
        assert get(parsed["relay-a"].path)[0] == 404  # one time only
        assert get("/" + os.path.basename(str(release)))[0] == 404
        assert get(parsed["relay-a"].path.rsplit("/", 1)[0] + "/../../etc/passwd")[0] == 404
        assert get(parsed["relay-b"].path) == (200, release.read_bytes())
        # Bound to the configured address only, not to every address.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.2", port), timeout=2).close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    # A master listening on every address (Salt's default interface) with no
    # release_serve_address: refused, naming the key, nothing bound.
    wildcard = {"interface": "0.0.0.0", "kiosk": {}}
    with (
        pytest.raises(KioskInputError, match="kiosk:release_serve_address"),
        serve.serve_file(wildcard, str(release), ["relay-a"]),
    ):
        pass
    for value in ("0.0.0.0", "::", "build.example", 7):
        bad = {"kiosk": {"release_serve_address": value}}
        with (
            pytest.raises(KioskInputError, match=r"kiosk:release_serve_address .*expected"),
            serve.serve_file(bad, str(release), ["relay-a"]),
        ):
            pass


def test_finding11_unpacked_size_and_member_caps(tmp_path):
    """A small archive that unpacks far beyond the cap is refused before anything is unpacked."""
    base = tmp_path / "releases"
    opts = old_release_in_place(tmp_path, base)
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as archive:
        info = tarfile.TarInfo("data/zeros.bin")
        info.size = 8 * 1024 * 1024
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    assert os.path.getsize(bomb) < 64 * 1024
    capped = {"kiosk": dict(opts["kiosk"], release_max_bytes=1024 * 1024)}
    error = attempt(install_file, capped, "2.0", bomb)
    assert sorted(os.listdir(base)) == [".kiosk-last-attempt.json", "1.0", "current"]
    assert release_install.current(opts)["version"] == "1.0"
    assert isinstance(error, release_install.UnsafeArchive), repr(error)
    assert "kiosk:release_max_bytes" in str(error) and "1048576" in str(error), str(error)

    many = tmp_path / "many.tar.gz"
    write_tar(many, [(f"f{index}", "file", b"x") for index in range(50)])
    limited = {"kiosk": dict(opts["kiosk"], release_max_members=20)}
    with pytest.raises(release_install.UnsafeArchive, match=r"more than 20 members .*kiosk:release_max_members"):
        install_file(limited, "2.1", many)

    bad = {"kiosk": dict(opts["kiosk"], release_max_bytes="lots")}
    with pytest.raises(KioskInputError, match=r"kiosk:release_max_bytes 'lots'.*positive number of bytes"):
        install_file(bad, "2.2", many)

    assert sorted(os.listdir(base)) == [".kiosk-last-attempt.json", "1.0", "current"]
    assert release_install.current(opts)["version"] == "1.0"
    assert (base / "current" / "bin" / "app").read_bytes() == b"v1"


class PowerLoss(BaseException):
    """The machine loses power: nothing after this point runs."""


def test_finding11_reinstall_never_leaves_current_dangling(tmp_path, monkeypatch):
    """
    Reinstalling the current version with other content: at every instant
    ``current`` points at a complete release. The power loss is injected at
    the moment the new directory is renamed into place.
    """
    base = tmp_path / "releases"
    opts = old_release_in_place(tmp_path, base)
    write_tar(tmp_path / "v1b.tar.gz", [("bin/app", "file", b"v1 rebuilt")])
    real_replace = os.replace

    def replace(src, dst, **kwargs):
        if os.path.isdir(src) and os.path.basename(str(src)).startswith(".1.0."):
            raise PowerLoss(f"power lost while renaming {src} to {dst}")
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PowerLoss):
        install_file(opts, "1.0", tmp_path / "v1b.tar.gz")
    monkeypatch.setattr(os, "replace", real_replace)

    current = base / "current"
    assert os.path.exists(current), f"current is dangling: -> {os.readlink(current)}"
    assert (current / "bin" / "app").read_bytes() == b"v1"
    assert release_install.current(opts)["version"] == "1.0"

    # Without the power loss the reinstall completes, and the old copy goes.
    done = install_file(opts, "1.0", tmp_path / "v1b.tar.gz")
    assert done["changed"] and (current / "bin" / "app").read_bytes() == b"v1 rebuilt"
    info = release_install.current(opts)
    assert info["version"] == "1.0" and info["md5"] == md5_of((tmp_path / "v1b.tar.gz").read_bytes())
    assert [n for n in os.listdir(base) if not n.startswith(".") and n != "current"] == [os.path.basename(info["path"])]
