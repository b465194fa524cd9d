"""Releases: versions, the catalogue on the master, staging manifests and kiosk installs."""

import hashlib
import io
import json
import os
import tarfile

import pytest

from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import delivery, release_install, release_stage
from salt_kiosk.releases import catalogue


def md5_of(data):
    return hashlib.md5(data).hexdigest()


@pytest.mark.parametrize(
    "value, normal", [("1.4.0", "1.4.0"), ("2026.11.2", "2026.11.2"), ("v1.2", "1.2"), (2, "2"), ("1.5rc1", "1.5rc1")]
)
def test_versions(value, normal):
    assert release_install.check_version(value) == normal


@pytest.mark.parametrize("value", ["", "latest", "1.4/../x", "1 4", None, True, "../1.0"])
def test_bad_versions(value):
    with pytest.raises(KioskInputError, match="is not a valid version string"):
        release_install.check_version(value)


def test_next_version():
    assert catalogue.next_version("1.4.0") == "1.4.1"
    assert catalogue.next_version("2") == "3"
    assert catalogue.next_version("1.5rc1") == "1.6"


class Stager:
    def __init__(self):
        self.calls = []

    def __call__(self, opts, kstore, release, path, timeout, latest=False):
        self.calls.append(release["version"])
        return {"staged": ["relay-e1"], "failed": {}, "silent": []}


def allow_sources(opts, *folders):
    opts["kiosk"]["release_sources"] = [str(folder) for folder in folders]
    return opts


def test_publish_records_and_refuses_other_content(opts, kstore, tmp_path):
    allow_sources(opts, tmp_path)
    v1 = tmp_path / "ui-1.img"
    v1.write_bytes(b"one" * 1000)
    stager = Stager()
    rel = catalogue.publish(opts, kstore, "1.0.0", str(v1), stager=stager)
    assert rel["md5"] == md5_of(v1.read_bytes()) and rel["new"] and rel["file"] == "ui-1.img"
    stored = os.path.join(catalogue.release_store(opts), "1.0.0", "ui-1.img")
    assert open(stored, "rb").read() == v1.read_bytes()
    # Same content again: re-staged, not duplicated.
    again = catalogue.publish(opts, kstore, "1.0", str(v1), stager=stager)
    assert again["new"] is False and again["version"] == "1.0.0" and stager.calls == ["1.0.0", "1.0.0"]
    other = tmp_path / "ui-other.img"
    other.write_bytes(b"two" * 1000)
    with pytest.raises(KioskInputError, match="already published with md5"):
        catalogue.publish(opts, kstore, "1.0.0", str(other), stager=stager)
    assert open(stored, "rb").read() == v1.read_bytes()
    with pytest.raises(delivery.Md5Mismatch):
        catalogue.publish(opts, kstore, "1.1.0", str(other), md5="f" * 32, stager=stager)
    assert [r["version"] for r in catalogue.list_releases(kstore)] == ["1.0.0"]


def test_rollback_is_a_new_version_with_old_content(opts, kstore, tmp_path):
    allow_sources(opts, tmp_path)
    stager = Stager()
    for version, body in (("1.0.0", b"one"), ("1.1.0", b"two")):
        path = tmp_path / f"ui-{version}.bin"
        path.write_bytes(body)
        catalogue.publish(opts, kstore, version, str(path), stager=stager)
    back = catalogue.rollback(opts, kstore, stager=stager)
    assert back["version"] == "1.1.1" and back["rollback_of"] == "1.0.0" and back["md5"] == md5_of(b"one")
    assert catalogue.latest_release(kstore)["version"] == "1.1.1"
    named = catalogue.rollback(opts, kstore, to="1.1.0", version="2.0", stager=stager)
    assert named["md5"] == md5_of(b"two")
    with pytest.raises(KioskInputError, match="must be higher than the latest release 2.0"):
        catalogue.rollback(opts, kstore, version="1.9", stager=stager)
    with pytest.raises(KioskInputError, match="release '9.9' is unknown"):
        catalogue.rollback(opts, kstore, to="9.9", stager=stager)


def test_rollback_without_history_is_refused(opts, kstore):
    with pytest.raises(KioskInputError, match="nothing to roll back"):
        catalogue.rollback(opts, kstore, stager=Stager())


def test_publish_without_relays_changes_nothing(tmp_path):
    from salt_kiosk.db import store

    opts = {"cachedir": str(tmp_path), "kiosk": {}}
    path = tmp_path / "a.bin"
    path.write_bytes(b"x")
    with pytest.raises(KioskInputError, match="no relays are configured"):
        catalogue.publish(opts, store.open_store(opts), "1.0", str(path))
    assert catalogue.list_releases(store.open_store(opts)) == []
    store.dispose_all()


def test_stage_local_writes_file_and_manifests(tmp_path):
    src = tmp_path / "app.tar"
    src.write_bytes(b"payload")
    opts = {"kiosk": {"release_root": str(tmp_path / "root")}}
    ret = release_stage.stage_local(opts, "1.2.0", str(src), md5_of(b"payload"), "app.tar")
    assert ret["changed"]
    base = tmp_path / "root" / "kiosk_releases"
    assert (base / "1.2.0" / "app.tar").read_bytes() == b"payload"
    assert json.loads((base / "latest.json").read_text())["md5"] == md5_of(b"payload")
    release_stage.stage_local(opts, "1.1.0", str(src), md5_of(b"payload"), "app.tar", latest=False)
    assert json.loads((base / "latest.json").read_text())["version"] == "1.2.0"
    with pytest.raises(delivery.Md5Mismatch):
        release_stage.stage_local(opts, "1.3.0", str(src), "0" * 32, "app.tar")
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
    assert release_install.current(opts)["version"] is None
    one = release_install.install(opts, "1.0", md5_of(data1), "app.tar.gz", source=str(tmp_path / "app-1.tar.gz"))
    assert one["changed"] and one["previous"] is None
    cur = tmp_path / "releases" / "current"
    assert os.readlink(cur) == "1.0" and (cur / "bin" / "app").read_bytes() == b"v1"
    assert release_install.install(opts, "1.0", md5_of(data1), "app.tar.gz", source="/never/read")["changed"] is False
    with pytest.raises(delivery.Md5Mismatch) as err:
        release_install.install(opts, "2.0", "1" * 32, "app.tar.gz", source=str(tmp_path / "app-2.tar.gz"))
    assert md5_of(data2) in str(err.value)
    state = release_install.current(opts)
    assert state["version"] == "1.0" and (cur / "bin" / "app").read_bytes() == b"v1"
    assert state["last_attempt"]["ok"] is False and "1" * 32 in state["last_attempt"]["error"]
    assert not (tmp_path / "releases" / "2.0").exists()
    assert [n for n in os.listdir(tmp_path / "releases") if n.startswith(".2.0")] == []
    two = release_install.install(opts, "2.0", md5_of(data2), "app.tar.gz", source=str(tmp_path / "app-2.tar.gz"))
    assert two["previous"] == "1.0" and (cur / "bin" / "app").read_bytes() == b"v2"
    assert release_install.current(opts)["last_attempt"]["ok"] is True


def test_install_refuses_archive_escaping_its_directory(tmp_path):
    opts = {"kiosk": {"release_dir": str(tmp_path / "releases")}}
    data = make_tar(tmp_path / "evil.tar.gz", {"../../escape": b"x"})
    with pytest.raises(release_install.UnsafeArchive, match="member '../../escape' contains '..'"):
        release_install.install(opts, "1.0", md5_of(data), "evil.tar.gz", source=str(tmp_path / "evil.tar.gz"))
    assert not (tmp_path / "escape").exists() and release_install.current(opts)["version"] is None
    assert os.listdir(tmp_path / "releases") == [".kiosk-last-attempt.json"]


def tar_of(path, entries, mode=0o644):
    """(name, type, payload): payload is the content of a file or the target of a link."""
    with tarfile.open(path, "w") as archive:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = payload or ""
                archive.addfile(info)
    return path


REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


@pytest.mark.parametrize(
    "entries, mode, message",
    [
        ([("/etc/cron.d/x", REG, b"x")], 0o644, "is an absolute path"),
        ([("a/../../x", REG, b"x")], 0o644, "contains '..'"),
        ([("dev", tarfile.CHRTYPE, None)], 0o644, "is a character device"),
        ([("disk", tarfile.BLKTYPE, None)], 0o644, "is a block device"),
        ([("pipe", tarfile.FIFOTYPE, None)], 0o644, "is a FIFO"),
        ([("bin/su", REG, b"x")], 0o4755, "setuid or setgid"),
        ([("bin", DIR, None)], 0o2755, "setuid or setgid"),
        ([("etc", SYM, "/etc")], 0o777, "absolute path '/etc'"),
        ([("up", SYM, "..")], 0o777, "leads outside the release directory"),
        ([("a/b", DIR, None), ("a/b/up", SYM, "../../..")], 0o777, "leads outside"),
        # '..' after a link leaves the link's target, not the link's name.
        ([("deep/er", DIR, None), ("x", SYM, "deep/er"), ("y", SYM, "x/../../..")], 0o777, "'y' is a symbolic link"),
        ([("loop1", SYM, "loop2"), ("loop2", SYM, "loop1")], 0o777, "does not resolve within 40 links"),
        ([("lib", SYM, "data"), ("lib/x", REG, b"x")], 0o644, "written through the symbolic link 'lib'"),
        ([("f", REG, b"x"), ("f/x", REG, b"x")], 0o644, "written through the file 'f'"),
        ([("link", SYM, "target"), ("link", REG, b"x")], 0o644, "appears twice"),
        ([("f", REG, b"x"), ("f", REG, b"y")], 0o644, "appears twice"),
        ([("hard", LNK, "/etc/passwd")], 0o644, "hard link target '/etc/passwd' is an absolute path"),
        ([("hard", LNK, "../x")], 0o644, "contains '..'"),
        ([("later", LNK, "f"), ("f", REG, b"x")], 0o644, "not a regular file earlier in the archive"),
        ([("s", SYM, "f"), ("hard", LNK, "s")], 0o644, "not a regular file earlier"),
        ([("app.tar", REG, b"x")], 0o644, "which the release itself uses"),
        ([(".kiosk-release.json", REG, b"{}")], 0o644, "which the release itself uses"),
    ],
)
def test_archive_members_are_checked_before_anything_is_unpacked(tmp_path, entries, mode, message):
    base = tmp_path / "releases"
    opts = {"kiosk": {"release_dir": str(base)}}
    good = make_tar(tmp_path / "good.tar.gz", {"bin/app": b"v1"})
    release_install.install(opts, "1.0", md5_of(good), "app.tar.gz", source=str(tmp_path / "good.tar.gz"))
    path = tar_of(tmp_path / "bad.tar", [("ok/first", REG, b"unpacked?")] + entries, mode=mode)
    with pytest.raises(release_install.UnsafeArchive, match=message.replace("(", r"\(").replace(")", r"\)")):
        release_install.install(opts, "2.0", md5_of(path.read_bytes()), "app.tar", source=str(path))
    assert sorted(os.listdir(base)) == [".kiosk-last-attempt.json", "1.0", "current"]
    assert release_install.current(opts)["version"] == "1.0"
    assert not (tmp_path / "etc").exists() and not (tmp_path / "x").exists()


def test_archive_with_inside_links_installs(tmp_path):
    base = tmp_path / "releases"
    opts = {"kiosk": {"release_dir": str(base)}}
    path = tar_of(
        tmp_path / "ok.tar",
        [
            ("./", DIR, None),
            ("./lib64", DIR, None),
            ("./lib64/libui.so.1", REG, b"lib"),
            ("./lib", SYM, "lib64"),
            ("./lib64/libui.so", SYM, "../lib/libui.so.1"),
            ("./bin/app", REG, b"app"),
            ("./bin/app-again", LNK, "bin/app"),
            ("./share/dangling", SYM, "../nowhere/yet"),
        ],
        mode=0o775,
    )
    done = release_install.install(opts, "1.0", md5_of(path.read_bytes()), "app.tar", source=str(path))
    cur = base / "current"
    assert (cur / "lib" / "libui.so").read_bytes() == b"lib"
    assert (cur / "bin" / "app-again").read_bytes() == b"app"
    assert os.readlink(cur / "share" / "dangling") == "../nowhere/yet"
    assert (cur / "bin" / "app").stat().st_mode & 0o777 == 0o755  # no group/other write
    assert done["path"] == str(base / "1.0")


def test_reinstalling_a_version_with_other_content_uses_a_fresh_directory(tmp_path):
    base = tmp_path / "releases"
    opts = {"kiosk": {"release_dir": str(base), "release_keep": 2}}
    one = make_tar(tmp_path / "one.tar.gz", {"bin/app": b"one"})
    other = make_tar(tmp_path / "other.tar.gz", {"bin/app": b"other"})
    release_install.install(opts, "1.0", md5_of(one), "app.tar.gz", source=str(tmp_path / "one.tar.gz"))
    again = release_install.install(opts, "1.0", md5_of(other), "app.tar.gz", source=str(tmp_path / "other.tar.gz"))
    name = os.path.basename(again["path"])
    assert name.startswith("1.0~") and os.readlink(base / "current") == name
    assert sorted(os.listdir(base)) == sorted([".kiosk-last-attempt.json", "current", name])
    info = release_install.current(opts)
    assert info["version"] == "1.0" and info["md5"] == md5_of(other) and info["path"] == again["path"]
    # Back to the first content: a fresh directory again (the plain name is free).
    back = release_install.install(opts, "1.0", md5_of(one), "app.tar.gz", source=str(tmp_path / "one.tar.gz"))
    assert os.path.basename(back["path"]) == "1.0" and sorted(os.listdir(base))[1:] == ["1.0", "current"]
    for index in (2, 3):
        data = make_tar(tmp_path / f"v{index}.tar.gz", {"bin/app": b"%d" % index})
        release_install.install(
            opts, f"{index}.0", md5_of(data), "app.tar.gz", source=str(tmp_path / f"v{index}.tar.gz")
        )
    assert sorted(os.listdir(base)) == [".kiosk-last-attempt.json", "2.0", "3.0", "current"]


def test_bad_install_limits_are_refused_before_anything_is_fetched(tmp_path):
    for key, value in (("release_max_bytes", 0), ("release_max_members", "many"), ("release_max_bytes", True)):
        opts = {"kiosk": {"release_dir": str(tmp_path / "releases"), key: value}}
        with pytest.raises(
            KioskInputError, match=f"kiosk:{key} {value!r} is out of range \\(accepted: a positive number"
        ):
            release_install.install(opts, "1.0", "0" * 32, "app.tar.gz", source="/never/read")
        assert not (tmp_path / "releases").exists()


def test_plain_release_file_larger_than_the_cap_is_refused(tmp_path):
    src = tmp_path / "app.bin"
    src.write_bytes(b"x" * 2048)
    opts = {"kiosk": {"release_dir": str(tmp_path / "releases"), "release_max_bytes": 1024}}
    with pytest.raises(delivery.KioskDeliveryError, match="larger than 1024 bytes .kiosk:release_max_bytes"):
        release_install.install(opts, "1.0", md5_of(src.read_bytes()), "app.bin", source=str(src))
    assert os.listdir(tmp_path / "releases") == [".kiosk-last-attempt.json"]


def test_publish_refuses_sources_outside_the_configuration(opts, kstore, tmp_path):
    sources = tmp_path / "sources"
    sources.mkdir()
    inside = sources / "ui.tar"
    inside.write_bytes(b"inside")
    secret = tmp_path / "secret.tar"
    secret.write_bytes(b"secret")
    stager = Stager()
    with pytest.raises(KioskInputError, match="kiosk:release_sources is not set"):
        catalogue.publish(opts, kstore, "1.0", str(inside), stager=stager)
    with pytest.raises(KioskInputError, match="kiosk:release_urls is not set"):
        catalogue.publish(opts, kstore, "1.0", "https://build.example/ui.tar", stager=stager)
    allow_sources(opts, sources)
    (sources / "link.tar").symlink_to(secret)
    for source in (str(secret), str(sources / ".." / "secret.tar"), str(sources / "link.tar"), "file://" + str(secret)):
        with pytest.raises(KioskInputError, match="is not inside the release sources") as err:
            catalogue.publish(opts, kstore, "1.0", source, md5="0" * 32, stager=stager)
        assert md5_of(b"secret") not in str(err.value) and repr(source) in str(err.value)
    with pytest.raises(KioskInputError, match="does not exist or is not a regular file"):
        catalogue.publish(opts, kstore, "1.0", str(sources / "missing.tar"), stager=stager)
    with pytest.raises(KioskInputError, match="is not inside"):
        catalogue.publish(opts, kstore, "1.0", str(sources), stager=stager)
    with pytest.raises(delivery.Md5Mismatch, match=md5_of(b"inside")):  # inside: the operator's own file
        catalogue.publish(opts, kstore, "1.0", str(inside), md5="0" * 32, stager=stager)
    opts["kiosk"]["release_urls"] = ["https://build.example/releases"]
    for url in (
        "https://build.example/releases-evil/ui.tar",
        "https://build.example.evil/releases/ui.tar",
        "http://build.example/releases/ui.tar",
        "https://build.example:8443/releases/ui.tar",
        "https://build.example/releases/../admin/ui.tar",
        "https://build.example/releases/%2e%2e/x.tar",
        "https://user@build.example/releases/ui.tar",
    ):
        with pytest.raises(KioskInputError, match="is not under an allowed URL prefix"):
            catalogue.publish(opts, kstore, "1.0", url, stager=stager)
    assert catalogue._url_allowed("https://BUILD.example:443/releases/ui.tar", catalogue.release_urls(opts))
    for key, value, message in (
        ("release_sources", ["relative/dir"], "is relative"),
        ("release_sources", ["/"], "is the root directory"),
        ("release_sources", "/srv/x", None),
        ("release_urls", ["ftp://build.example/"], "is not an http"),
        ("release_urls", [3], "is not a list of strings"),
    ):
        bad = {"kiosk": dict(opts["kiosk"], **{key: value})}
        if message is None:
            assert catalogue.release_sources(bad) == [os.path.realpath("/srv/x")]
            continue
        with pytest.raises(KioskInputError, match=f"kiosk:{key}.*{message}"):
            catalogue.publish(
                bad, kstore, "1.0", str(inside) if key == "release_sources" else "https://b.example/x", stager=stager
            )
    assert catalogue.list_releases(kstore) == [] and stager.calls == []
    store = catalogue.release_store(opts)
    assert not os.path.isdir(store) or os.listdir(store) == []


def test_reserved_release_file_names_are_refused():
    for name in ("release.json", "latest.json", "current"):
        with pytest.raises(KioskInputError, match="is reserved"):
            release_install.check_filename(name)


def test_install_cleans_leftovers_prunes_and_is_readable(tmp_path):
    base = tmp_path / "releases"
    opts = {"kiosk": {"release_dir": str(base), "release_keep": 2}}
    base.mkdir()
    (base / ".1.9.abcd").mkdir()  # an install cut short by a power loss
    for index in range(1, 4):
        data = make_tar(tmp_path / f"a{index}.tar.gz", {"bin/app": b"v%d" % index})
        release_install.install(
            opts, f"{index}.0", md5_of(data), "app.tar.gz", source=str(tmp_path / f"a{index}.tar.gz")
        )
    assert sorted(os.listdir(base)) == [".kiosk-last-attempt.json", "2.0", "3.0", "current"]
    assert (base / "3.0").stat().st_mode & 0o777 == 0o755


def test_staged_file_is_world_readable(tmp_path):
    src = tmp_path / "app.tar"
    src.write_bytes(b"payload")
    opts = {"kiosk": {"release_root": str(tmp_path / "root")}}
    ret = release_stage.stage_local(opts, "1.0", str(src), md5_of(b"payload"), "app.tar")
    assert os.stat(ret["path"]).st_mode & 0o777 == 0o644
    assert release_stage.promote_local(opts, "1.0")["latest"] is True


@pytest.mark.parametrize(
    "settings, message",
    [
        ({}, "kiosk:release_serve_address is not set and this master's interface '0.0.0.0' is every address"),
        ({"release_serve_address": "192.0.2.1"}, "cannot be used on this master"),
        (
            {"release_serve_address": "127.0.0.1", "release_serve_port": 70000},
            "kiosk:release_serve_port 70000 is not a port",
        ),
        ({"release_http": {"host": "0.0.0.0"}}, "kiosk:release_http .* is no longer read"),
    ],
)
def test_publish_refuses_unusable_serve_settings_before_reading(opts, kstore, tmp_path, settings, message):
    allow_sources(opts, tmp_path)
    opts["interface"] = "0.0.0.0"
    opts["kiosk"].update(settings)
    path = tmp_path / "ui.tar"
    path.write_bytes(b"ui")
    with pytest.raises(KioskInputError, match=message):
        catalogue.publish(opts, kstore, "1.0", str(path))
    assert catalogue.list_releases(kstore) == []
    assert not os.path.exists(catalogue.release_store(opts))
