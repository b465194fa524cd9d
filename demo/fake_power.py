"""
Stand-in for a kiosk's power-off command in the demo and test fleets (configured as
``kiosk:shutdown_command``): appends one JSON line per call to a log file
instead of powering the machine off.

Usage: fake_power.py LOGFILE ACTION DELAY [MESSAGE]

When ``LOGFILE.effect.json`` exists the kiosk "really" powers off: the file
holds ``{"run": [argv], "kill": pid, "after": seconds}``; ``run`` is executed
(e.g. taking the kiosk's address off a test network namespace) and, ``after``
seconds later, from a detached process, ``pid`` (the kiosk's minion) gets
SIGTERM, so that the job's answer still reaches the master first.
"""

import json
import os
import subprocess
import sys
import time


def main(argv):
    log, action, delay = argv[1], argv[2], argv[3]
    message = argv[4] if len(argv) > 4 else ""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"at": time.time(), "action": action, "delay": int(delay), "message": message}) + "\n")
    effect_file = log + ".effect.json"
    if os.path.exists(effect_file) and action != "cancel":
        with open(effect_file, encoding="utf-8") as handle:
            effect = json.load(handle)
        if effect.get("run"):
            subprocess.run(effect["run"], check=False)
        if effect.get("kill"):
            subprocess.Popen(
                ["/bin/sh", "-c", f"sleep {float(effect.get('after', 2))}; kill -TERM {int(effect['kill'])}"],
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
    print(f"{action} scheduled in {delay}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
