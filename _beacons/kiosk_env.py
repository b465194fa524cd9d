"""
Relay environment beacon: DHT11/DHT22 temperature and humidity and MQ-2 smoke.

.. code-block:: yaml

    beacons:
      kiosk_env:
        - driver: circuitpython      # simulated | adafruit_dht | circuitpython
        - dht_type: 11               # 11 | 22
        - dht_pin: 4                 # BCM numbering, 0-27
        - smoke_pin: 17              # MQ-2 digital output (active low by default)
        - temperature: [5, 35]       # alert outside [min, max]
        - humidity: [20, 80]
        - retries: 3                 # DHT reads fail often
        - interval: 60

Events fired (tag ``salt/beacon/<relay id>/kiosk_env/<suffix>``):

``reading``
    Every interval: ``{"temperature", "humidity", "smoke", "attempts", "errors"}``.

``alert/<sensor>``
    Once per threshold crossing and once when it clears: ``{"sensor",
    "state": high|low|smoke|clear, "value", "limits", "previous"}``.

With the master of masters' ``event_return: kiosk_mysql`` the events land in
the central database, where ``salt-run kiosk_env.report`` reads them.
"""

import logging

try:
    from salt_kiosk.node import sensors

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

log = logging.getLogger(__name__)

__virtualname__ = "kiosk_env"


def __virtual__():
    if not HAS_LIB:
        return (False, f"the salt_kiosk library is not importable ({_IMPORT_ERROR})")
    return __virtualname__


def validate(config):
    """Check the beacon configuration; the message names the bad field."""
    try:
        sensors.parse_config(config)
    except Exception as exc:  # pylint: disable=broad-except
        return False, f"kiosk_env: {exc}"
    return True, "valid config"


def beacon(config):
    """Read the sensors; return the reading and any alert transitions."""
    cfg = sensors.parse_config(config)
    state = __context__.setdefault("kiosk_env.state", {})
    alarms = __context__.setdefault("kiosk_env.alarms", {})
    reading = sensors.read(cfg, state)
    if reading["errors"]:
        log.warning("kiosk_env: %s", "; ".join(reading["errors"]))
    events = [dict(reading, tag="reading")]
    for alert in sensors.evaluate(cfg, reading, alarms):
        events.append(dict(alert, tag=f"alert/{alert['sensor']}"))
    return events
