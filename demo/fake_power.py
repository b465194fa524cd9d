"""
Stand-in for a kiosk's power-off command in the demo and test fleets (configured as
``kiosk:shutdown_command``): appends one JSON line per call to a log file
instead of powering the machine off.

Usage: fake_power.py LOGFILE ACTION DELAY [MESSAGE]
"""

import json
import sys
import time


def main(argv):
    log, action, delay = argv[1], argv[2], argv[3]
    message = argv[4] if len(argv) > 4 else ""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"at": time.time(), "action": action, "delay": int(delay), "message": message}) + "\n")
    print(f"{action} scheduled in {delay}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
