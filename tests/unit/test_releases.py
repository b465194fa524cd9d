"""Releases: versions, the catalogue on the master, staging manifests and kiosk installs."""

import hashlib
import io
import json
import os
import tarfile

import pytest

from salt_kiosk import delivery, releases
from salt_kiosk.errors import KioskInputError


def md5_of(data):
    return hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("value, normal", [("1.4.0", "1.4.0"), ("2026.11.2", "2026.11.2"), ("v1.2", "1.2"),
                                           (2, "2"), ("1.5rc1", "1.5rc1")])
def test_versions(value, normal):
    assert releases.check_version(value) == normal


@pytest.mark.parametrize("value", ["", "latest", "1.4/../x", "1 4", None, True, "../1.0"])
def test_bad_versions(value):
    with pytest.raises(KioskInputError, match="is not a valid version string"):
        releases.check_version(value)


def test_next_version():
    assert releases.next_version("1.4.0") == "1.4.1"
    assert releases.next_version("2") == "3"
    assert releases.next_version("1.5rc1") == "1.6"


class Stager:
    def __init__(self):
        self.calls = []

    def __call__(self, opts, kstore, release, timeout, latest=False):
        self.calls.append(release["version"])
        return {"staged": ["relay-e1"], "failed": {}, "silent": []}


def test_publish_records_and_refuses_other_content(opts, kstore, tmp_path):
    v1 = tmp_path / "ui-1.tar"
    v1.write_bytes(b"one" * 1000)
    stager = Stager()
    rel = releases.publish(opts, kstore, "1.0.0", str(v1), stager=stager)
    assert rel["md5"] == md5_of(v1.read_bytes()) and rel["new"] and rel["file"] == "ui-1.tar"
    stored = os.path.join(releases.release_store(opts), "1.0.0", "ui-1.tar")
    assert open(stored, "rb").read() == v1.read_bytes()
    # Same content again: re-staged, not duplicated.
    again = releases.publish(opts, kstore, "1.0", str(v1), stager=stager)
    assert again["new"] is False and again["version"] == "1.0.0" and stager.calls == ["1.0.0", "1.0.0"]
    other = tmp_path / "ui-other.tar"
    other.write_bytes(b"two" * 1000)
    with pytest.raises(KioskInputError, match="already published with md5"):
        releases.publish(opts, kstore, "1.0.0", str(other), stager=stager)
    assert open(stored, "rb").read() == v1.read_bytes()
    with pytest.raises(delivery.Md5Mismatch):
        releases.publish(opts, kstore, "1.1.0", str(other), md5="f" * 32, stager=stager)
    assert [r["version"] for r in releases.list_releases(kstore)] == ["1.0.0"]


def test_rollback_is_a_new_version_with_old_content(opts, kstore, tmp_path):
    stager = Stager()
    for version, body in (("1.0.0", b"one"), ("1.1.0", b"two")):
        path = tmp_path / f"ui-{version}.bin"
        path.write_bytes(body)
        releases.publish(opts, kstore, version, str(path), stager=stager)
    back = releases.rollback(opts, kstore, stager=stager)
    assert back["version"] == "1.1.1" and back["rollback_of"] == "1.0.0" and back["md5"] == md5_of(b"one")
    assert releases.latest_release(kstore)["version"] == "1.1.1"
    named = releases.rollback(opts, kstore, to="1.1.0", version="2.0", stager=stager)
    assert named["md5"] == md5_of(b"two")
    with pytest.raises(KioskInputError, match="must be higher than the latest release 2.0"):
        releases.rollback(opts, kstore, version="1.9", stager=stager)
    with pytest.raises(KioskInputError, match="release '9.9' is unknown"):
        releases.rollback(opts, kstore, to="9.9", stager=stager)


def test_rollback_without_history_is_refused(opts, kstore):
    with pytest.raises(KioskInputError, match="nothing to roll back"):
        releases.rollback(opts, kstore, stager=Stager())


def test_publish_without_relays_changes_nothing(tmp_path):
    from salt_kiosk import store

    opts = {"cachedir": str(tmp_path), "kiosk": {}}
    path = tmp_path / "a.bin"
    path.write_bytes(b"x")
    with pytest.raises(KioskInputError, match="no relays are configured"):
        releases.publish(opts, store.open_store(opts), "1.0", str(path))
    assert releases.list_releases(store.open_store(opts)) == []
    store.dispose_all()


def test_stage_local_writes_file_and_manifests(tmp_path):
    src = tmp_path / "app.tar"
    src.write_bytes(b"payload")
    opts = {"kiosk": {"release_root": str(tmp_path / "root")}}
    ret = releases.stage_local(opts, "1.2.0", str(src), md5_of(b"payload"), "app.tar")
    assert ret["changed"]
    base = tmp_path / "root" / "kiosk_releases"
    assert (base / "1.2.0" / "app.tar").read_bytes() == b"payload"
    assert json.loads((base / "latest.json").read_text())["md5"] == md5_of(b"payload")
    releases.stage_local(opts, "1.1.0", str(src), md5_of(b"payload"), "app.tar", latest=False)
    assert json.loads((base / "latest.json").read_text())["version"] == "1.2.0"
    with pytest.raises(delivery.Md5Mismatch):
        releases.stage_local(opts, "1.3.0", str(src), "0" * 32, "app.tar")
    assert not (base / "1.3.0" / "app.tar").exists()


def make_tar(path, files):
    with tarfile.open(path, "w:gz") as archive:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return path.read_bytes()


def test_install_switches_current_and_keeps_it_on_failure(tmp_path):
    opts = {"kiosk": {"release_dir": str(tmp_path / "releases")}}
    data1 = make_tar(tmp_path / "app-1.tar.gz", {"bin/app": b"v1"})
    data2 = make_tar(tmp_path / "app-2.tar.gz", {"bin/app": b"v2"})
    assert releases.current(opts)["version"] is None
    one = releases.install(opts, "1.0", md5_of(data1), "app.tar.gz", source=str(tmp_path / "app-1.tar.gz"))
    assert one["changed"] and one["previous"] is None
    cur = tmp_path / "releases" / "current"
    assert os.readlink(cur) == "1.0" and (cur / "bin" / "app").read_bytes() == b"v1"
    assert releases.install(opts, "1.0", md5_of(data1), "app.tar.gz", source="/never/read")["changed"] is False
    with pytest.raises(delivery.Md5Mismatch) as err:
        releases.install(opts, "2.0", "1" * 32, "app.tar.gz", source=str(tmp_path / "app-2.tar.gz"))
    assert md5_of(data2) in str(err.value)
    state = releases.current(opts)
    assert state["version"] == "1.0" and (cur / "bin" / "app").read_bytes() == b"v1"
    assert state["last_attempt"]["ok"] is False and "1" * 32 in state["last_attempt"]["error"]
    assert not (tmp_path / "releases" / "2.0").exists()
    assert [n for n in os.listdir(tmp_path / "releases") if n.startswith(".2.0")] == []
    two = releases.install(opts, "2.0", md5_of(data2), "app.tar.gz", source=str(tmp_path / "app-2.tar.gz"))
    assert two["previous"] == "1.0" and (cur / "bin" / "app").read_bytes() == b"v2"
    assert releases.current(opts)["last_attempt"]["ok"] is True


def test_install_refuses_archive_escaping_its_directory(tmp_path):
    opts = {"kiosk": {"release_dir": str(tmp_path / "releases")}}
    data = make_tar(tmp_path / "evil.tar.gz", {"../../escape": b"x"})
    with pytest.raises(tarfile.TarError):
        releases.install(opts, "1.0", md5_of(data), "evil.tar.gz", source=str(tmp_path / "evil.tar.gz"))
    assert not (tmp_path / "escape").exists() and releases.current(opts)["version"] is None


def test_reserved_release_file_names_are_refused():
    for name in ("release.json", "latest.json", "current"):
        with pytest.raises(KioskInputError, match="is reserved"):
            releases.check_filename(name)


def test_install_cleans_leftovers_prunes_and_is_readable(tmp_path):
    base = tmp_path / "releases"
    opts = {"kiosk": {"release_dir": str(base), "release_keep": 2}}
    base.mkdir()
    (base / ".1.9.abcd").mkdir()  # an install cut short by a power loss
    for index in range(1, 4):
        data = make_tar(tmp_path / f"a{index}.tar.gz", {"bin/app": b"v%d" % index})
        releases.install(opts, f"{index}.0", md5_of(data), "app.tar.gz", source=str(tmp_path / f"a{index}.tar.gz"))
    assert sorted(os.listdir(base)) == [".kiosk-last-attempt.json", "2.0", "3.0", "current"]
    assert (base / "3.0").stat().st_mode & 0o777 == 0o755


def test_staged_file_is_world_readable(tmp_path):
    src = tmp_path / "app.tar"
    src.write_bytes(b"payload")
    opts = {"kiosk": {"release_root": str(tmp_path / "root")}}
    ret = releases.stage_local(opts, "1.0", str(src), md5_of(b"payload"), "app.tar")
    assert os.stat(ret["path"]).st_mode & 0o777 == 0o644
    assert releases.promote_local(opts, "1.0")["latest"] is True
