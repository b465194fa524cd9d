"""
Security issue 13, finding 5, through ``salt-run kiosk_release.publish`` on the
real fleet: the master of masters reads release files only from
``kiosk:release_sources`` and URLs only under ``kiosk:release_urls``; anything
else is refused before it is read or fetched, so a wrong md5 reveals nothing,
and nothing is recorded, stored or staged.

Every publish here is refused, so the fleet's release history (which
``tests/integration/test_release.py`` builds in order) is untouched.
"""

import hashlib
import http.server
import os
import threading

import pytest

pytestmark = pytest.mark.fleet


def md5_of(data):
    return hashlib.md5(data).hexdigest()


class CountingHandler(http.server.BaseHTTPRequestHandler):
    requests = []

    def do_GET(self):  # noqa: N802
        CountingHandler.requests.append(self.path)
        body = b"secret served over http"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_finding5_publish_reads_only_configured_sources(fleet, fleet_inventory, tmp_path):
    sources = fleet.release_sources
    assert not os.path.realpath(str(tmp_path)).startswith(os.path.realpath(sources) + os.sep)
    secret = tmp_path / "kiosk-ui-secret.tar.gz"
    secret.write_bytes(b"database password: hunter2\n")
    secret_md5 = md5_of(secret.read_bytes())
    link = os.path.join(sources, "kiosk-ui-link.tar.gz")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(str(secret), link)
    wrong = "deadbeef" * 4  # hex with letters: the CLI would read 000...0 as the number 0
    run = fleet.salt_run_cli(timeout=120)
    try:
        attempts = {
            "outside the sources": str(secret),
            "'..' out of a source": os.path.join(sources, os.path.relpath(str(secret), sources)),
            "symlink in a source": link,
            "file:// outside": "file://" + str(secret),
        }
        for what, source in attempts.items():
            ret = run.run("kiosk_release.publish", "9.0.0", source, f"md5={wrong}")
            out = ret.stdout + ret.stderr
            assert secret_md5 not in out, (what, out)
            assert "kiosk:release_sources" in out and repr(source) in out, (what, out)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CountingHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/kiosk-ui-9.tar.gz"
            ret = run.run("kiosk_release.publish", "9.0.0", url, f"md5={wrong}")
            out = ret.stdout + ret.stderr
            assert "kiosk:release_urls" in out and url in out, out
            assert CountingHandler.requests == [], "the master fetched a URL that is not allowed"
        finally:
            server.shutdown()
            server.server_close()
    finally:
        os.unlink(link)

    listed = run.run("kiosk_release.list")
    assert "9.0.0" not in [rel["version"] for rel in listed.data], listed
    store = os.path.join(fleet.mom.config["cachedir"], "kiosk", "releases")
    assert not os.path.exists(os.path.join(store, "9.0.0"))
    assert not [n for n in (os.listdir(store) if os.path.isdir(store) else []) if n.startswith(".incoming")]
    for relay, root in fleet.release_root.items():
        assert not os.path.exists(os.path.join(root, "kiosk_releases", "9.0.0")), relay
