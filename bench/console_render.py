"""
Benchmark: the web console's two heaviest views, drawn by headless Chromium.

- Fleet view: 10,000 kiosks in 4 campuses (200 groups), each with a
  verification sweep (on, off or unknown; 1% with an open alert) and a release.
- Power plan: a 7-day timeline for 500 kiosks under the 1,000 rules of
  bench/plan_runner.py (campus and group hours, lunch breaks, overrides, holidays).

The data is what the runners return: ``kiosk_inventory.fleet``
(salt_kiosk.overview over an embedded SQLite store holding the simulated
inventory) and ``kiosk_power.plan ... timeline=True`` (salt_kiosk.power.schedule),
computed once and served by a stand-in for salt-api on loopback that answers
``/login`` and the console's runner calls with them (salt-api's own time is
not what is measured here; tests/integration/test_console.py runs the console
against the real one). The console's files are the installed package's.

Measured in the page (console.js marks ``fleet:data`` / ``plan:data`` when the
answer is parsed): *draw* is from that mark to the next frame (DOM built,
styled, laid out, painted); *total* is from the click that opens the view to
that frame (request, JSON parse and draw); *(script)* is the part of the draw
spent in console.js building the page (the rest is the browser's style,
layout and paint). Best and median of ``--repeat``.
Goal: draw under 1 s for each view.

Needs Debian's chromium (``/usr/bin/chromium``) and Playwright from PyPI
(the test extra); Playwright's own browser download is never used.

Run: python bench/console_render.py [--kiosks 10000] [--plan-kiosks 500] [--repeat 5]
"""

import argparse
import http.server
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from plan_runner import CAMPUSES, SINCE, UNTIL, rule_specs  # noqa: E402

from salt_kiosk import clock, console, inventory, overview  # noqa: E402
from salt_kiosk.db import schema, store  # noqa: E402
from salt_kiosk.power import rules, schedule  # noqa: E402

GOAL_S = 1.0


def simulated_fleet(tmp, count, rng):
    """The runners' answers for a simulated fleet: (fleet view, 7-day plan of 500 kiosks, rule list)."""
    campus_conf = {
        name: dict(spec, broadcast="10.255.255.255", relays=[f"relay-{name}-1", f"relay-{name}-2"])
        for name, spec in CAMPUSES.items()
    }
    kstore = store.open_store({"cachedir": tmp, "kiosk": {"campuses": campus_conf}})
    names = list(CAMPUSES)
    path = os.path.join(tmp, "inventory.csv")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("code,minion_id,campus,groups,ip,mac,vnc_port\n")
        for index in range(count):
            groups = ";".join(sorted({f"g{rng.randrange(200):03d}" for _ in range(rng.randint(1, 3))}))
            mac = f"02:00:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}:01"
            ip = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255 or 1}"
            handle.write(f"K{index:06d},kiosk-{index:06d},{names[index % 4]},{groups},{ip},{mac},5900\n")
    inventory.import_csv(kstore, path)
    now = clock.utcnow()
    sweeps, releases = [], []
    for index in range(count):
        observed = rng.choices(("on", "off", "unknown"), (70, 25, 5))[0]
        alert = rng.random() < 0.01
        sweeps.append(
            {
                "event_id": 1,
                "sweep": 3,
                "minion_id": f"kiosk-{index:06d}",
                "expected": "on" if not alert else ("off" if observed == "on" else "on"),
                "observed": observed,
                "network": "up" if observed == "on" else "down",
                "salt": "up" if observed == "on" else "down",
                "ok": not alert,
                "reason": "still off 15 minutes after the wake" if alert else None,
                "final": True,
                "checked_at": now,
            }
        )
        releases.append({"minion_id": f"kiosk-{index:06d}", "version": rng.choice(("2.3.0", "2.3.1")), "ok": True})
    with kstore.begin() as conn:
        conn.execute(schema.sweep_results.insert(), sweeps)
        conn.execute(
            schema.release_kiosks.insert(),
            [dict(r, md5="0" * 32, attempted=r["version"], rolled_back=False, seen_at=now) for r in releases],
        )
    fleet_view = overview.fleet(kstore)
    rules.add_many(kstore, rule_specs(1000, count, rng, "r"))
    rule_list = rules.list_rules(kstore)
    return kstore, fleet_view, rule_list


def plan_of(kstore, plan_kiosks):
    kiosks = inventory.list_kiosks(kstore)[:plan_kiosks]
    return schedule.plan(kiosks, kstore.campus_rows(), rules.load(kstore), "off", SINCE, UNTIL, timeline=True)


class StandIn(http.server.BaseHTTPRequestHandler):
    """salt-api as the console sees it: /console, /console-static, /login and runner calls on /."""

    answers = {}

    def log_message(self, *args):  # quiet
        pass

    def _send(self, body, ctype="application/json"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.startswith("/console-static/"):
            name = os.path.basename(self.path)
            with open(os.path.join(console.STATIC, name), "rb") as handle:
                ctype = "text/css" if name.endswith(".css") else "application/javascript"
                return self._send(handle.read(), ctype)
        with open(console.INDEX, "rb") as handle:
            return self._send(handle.read(), "text/html; charset=utf-8")

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/login":
            login = {"token": "bench", "expire": time.time() + 3600, "user": "bench", "eauth": "bench"}
            return self._send(json.dumps({"return": [dict(login, perms=["@runner"])]}).encode())
        return self._send(self.answers.get(request[0]["fun"], b'{"return": [{}]}'))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kiosks", type=int, default=10000)
    parser.add_argument("--plan-kiosks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        print("chromium is missing: install Debian's package (apt-get install chromium)", file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import sync_playwright  # pylint: disable=import-outside-toplevel
    except ImportError:
        print("playwright is missing: pip install -e '.[test]'", file=sys.stderr)
        return 2
    if not 1 <= args.plan_kiosks <= args.kiosks:
        print(f"--plan-kiosks {args.plan_kiosks} is not accepted: 1 to --kiosks ({args.kiosks})", file=sys.stderr)
        return 2

    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        kstore, fleet_view, rule_list = simulated_fleet(tmp, args.kiosks, rng)
        plan = plan_of(kstore, args.plan_kiosks)
        store.dispose_all()
    segments = sum(len(entry["timeline"]) for entry in plan.values())
    StandIn.answers = {
        "kiosk_inventory.fleet": json.dumps({"return": [fleet_view]}).encode(),
        "kiosk_power.plan": json.dumps({"return": [plan]}).encode(),
        "kiosk_power.rule_list": json.dumps({"return": [rule_list]}).encode(),
    }
    print(
        f"data (untimed, {time.perf_counter() - started:.1f} s): fleet view of {args.kiosks} kiosks "
        f"{len(StandIn.answers['kiosk_inventory.fleet']) / 1e6:.1f} MB; plan of {len(plan)} kiosks, "
        f"{segments} segments, {len(StandIn.answers['kiosk_power.plan']) / 1e6:.1f} MB; {len(rule_list)} rules"
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    figures = {"fleet": [], "plan": []}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.set_default_timeout(120000)
        page.goto(f"{base}/console")
        page.fill("#username", "bench")
        page.fill("#password", "bench")
        page.click("#login button[type=submit]")
        page.wait_for_selector(".tile")
        for _ in range(args.repeat):
            for view, selector, last in (
                ("plan", "nav a[data-view=plan]", "#plan-timeline .tl-row[data-kiosk]"),
                ("fleet", "nav a[data-view=fleet]", ".tile"),
            ):
                page.evaluate("performance.clearMarks(); window.__clicked = performance.now();")
                page.click(selector)
                page.wait_for_selector(last)
                times = page.evaluate(
                    """view => new Promise(done => requestAnimationFrame(() => setTimeout(() => {
                        const frame = performance.now();
                        const data = performance.getEntriesByName(view + ":data")[0].startTime;
                        const built = performance.getEntriesByName(view + ":drawn")[0].startTime;
                        done({draw: (frame - data) / 1000, build: (built - data) / 1000, total: (frame - window.__clicked) / 1000});
                    }, 0)))""",
                    view,
                )
                figures[view].append(times)
        count = page.eval_on_selector_all(".tile", "t => t.length")
        browser.close()
    server.shutdown()
    if count != args.kiosks:
        print(f"INCOMPLETE: the fleet view drew {count} tiles for {args.kiosks} kiosks", file=sys.stderr)
        return 1
    print(f"\nview    kiosks   draw best  median  (script)   total best  median   goal draw < {GOAL_S:.0f} s")
    over = []
    for view, kiosks in (("fleet", args.kiosks), ("plan", args.plan_kiosks)):
        draws = [f["draw"] for f in figures[view]]
        builds = [f["build"] for f in figures[view]]
        totals = [f["total"] for f in figures[view]]
        met = statistics.median(draws) < GOAL_S
        if not met:
            over.append(view)
        print(
            f"{view:<7} {kiosks:>6}   {min(draws):8.3f}  {statistics.median(draws):6.3f}  ({statistics.median(builds):6.3f})   "
            f"{min(totals):9.3f}  {statistics.median(totals):6.3f}   {'MET' if met else 'MISSED'}"
        )
    print(f"RESULT kiosks={args.kiosks} plan-kiosks={args.plan_kiosks} over={','.join(over) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
