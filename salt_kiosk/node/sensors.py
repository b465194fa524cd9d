"""
Relay environment sensors: DHT11/DHT22 temperature and humidity and an MQ-2
smoke detector on a GPIO digital input, behind one interface.

Drivers (``driver``): ``simulated`` (scripted readings, for tests and the demo),
``adafruit_dht`` (the Adafruit_DHT library), ``circuitpython``
(adafruit-circuitpython-dht with Blinka, current Raspberry Pi OS). The smoke
input uses RPi.GPIO or gpiozero (``smoke_gpio``: ``auto``, ``rpi``,
``gpiozero``). Hardware libraries are imported only when their driver is used;
a missing one makes only that driver unavailable, with the reason.

DHT reads fail often: each read is retried up to ``retries`` times.
Thresholds alert once per crossing (``high``/``low``/``smoke``) and once when
the value is back in range (``clear``), never every interval.
"""

import logging
import math
import numbers
import time

from salt_kiosk.errors import KioskInputError

log = logging.getLogger(__name__)

DRIVERS = ("simulated", "adafruit_dht", "circuitpython")
KEYS = (
    "driver",
    "dht_type",
    "dht_pin",
    "smoke_pin",
    "smoke_gpio",
    "smoke_active_low",
    "temperature",
    "humidity",
    "retries",
    "retry_delay",
    "script",
    "interval",
    # Salt's own beacon options
    "disable_during_state_run",
    "beacon_module",
    "enabled",
    "run_once",
)
SENSORS = ("temperature", "humidity", "smoke")


class SensorUnavailable(Exception):
    """The driver's hardware library is missing or the hardware does not answer."""


def _flatten(config):
    """Beacon configs come as a list of one-key dicts; accept a dict too."""
    if isinstance(config, dict):
        return dict(config)
    if isinstance(config, list):
        merged = {}
        for item in config:
            if not isinstance(item, dict):
                raise KioskInputError(
                    f"kiosk_env config item {item!r} is not a mapping (expected e.g. - driver: simulated)"
                )
            merged.update(item)
        return merged
    raise KioskInputError(f"kiosk_env config {config!r} must be a list of mappings or a mapping")


def _range(name, value, default):
    if value is None:
        return default
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, numbers.Number) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        or value[0] >= value[1]
    ):
        raise KioskInputError(
            f"{name} threshold {value!r} is not a range: expected [min, max] finite numbers with min < max"
        )
    return [float(value[0]), float(value[1])]


def _pin(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 27:
        raise KioskInputError(f"{name} {value!r} is out of range: expected a BCM GPIO number 0-27")
    return value


def parse_config(config):
    """Validate and normalise a ``kiosk_env`` configuration; raise naming the bad field."""
    # Salt adds private keys (``_beacon_name``) to a beacon's configuration.
    cfg = {key: value for key, value in _flatten(config).items() if not str(key).startswith("_")}
    if cfg.get("beacon_module") not in (None, "kiosk_env"):
        raise KioskInputError(f"beacon_module {cfg['beacon_module']!r} is not kiosk_env")
    unknown = sorted(set(cfg) - set(KEYS))
    if unknown:
        raise KioskInputError(f"kiosk_env has unknown key(s) {unknown} (accepted: {', '.join(KEYS)})")
    driver = cfg.get("driver", "simulated")
    if driver not in DRIVERS:
        raise KioskInputError(f"driver {driver!r} is unknown (accepted: {', '.join(DRIVERS)})")
    dht_type = cfg.get("dht_type", 11)
    if dht_type not in (11, 22, "11", "22"):
        raise KioskInputError(f"dht_type {dht_type!r} is not supported (accepted: 11, 22)")
    smoke_gpio = cfg.get("smoke_gpio", "auto")
    if smoke_gpio not in ("auto", "rpi", "gpiozero"):
        raise KioskInputError(f"smoke_gpio {smoke_gpio!r} is unknown (accepted: auto, rpi, gpiozero)")
    retries = cfg.get("retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 1 <= retries <= 10:
        raise KioskInputError(f"retries {retries!r} is out of range: expected 1-10")
    delay = cfg.get("retry_delay", 2.0)
    if isinstance(delay, bool) or not isinstance(delay, numbers.Number) or not 0 <= delay <= 10:
        raise KioskInputError(f"retry_delay {delay!r} is out of range: expected 0-10 seconds")
    script = cfg.get("script")
    if script is not None and (not isinstance(script, list) or not all(isinstance(i, dict) for i in script)):
        raise KioskInputError("script must be a list of readings such as {temperature: 25, humidity: 40, smoke: false}")
    if driver == "simulated" and not script:
        script = [{"temperature": 22.0, "humidity": 45.0, "smoke": False}]
    return {
        "driver": driver,
        "dht_type": int(dht_type),
        "dht_pin": _pin("dht_pin", cfg.get("dht_pin", 4 if driver != "simulated" else None)),
        "smoke_pin": _pin("smoke_pin", cfg.get("smoke_pin")),
        "smoke_gpio": smoke_gpio,
        "smoke_active_low": bool(cfg.get("smoke_active_low", True)),
        "temperature": _range("temperature", cfg.get("temperature"), [5.0, 35.0]),
        "humidity": _range("humidity", cfg.get("humidity"), [20.0, 80.0]),
        "retries": retries,
        "retry_delay": float(delay),
        "script": script,
    }


# --- drivers --------------------------------------------------------------------


def _simulated(cfg, state):
    step = state.get("step", 0)
    state["step"] = step + 1
    item = cfg["script"][step % len(cfg["script"])]
    if item.get("fail"):
        raise RuntimeError("simulated read failure")
    return item.get("temperature"), item.get("humidity"), item.get("smoke")


def _adafruit(cfg, _state):
    try:
        import Adafruit_DHT  # pylint: disable=import-outside-toplevel,import-error
    except ImportError as exc:
        raise SensorUnavailable(f"driver adafruit_dht needs the Adafruit_DHT library ({exc})") from exc
    sensor = Adafruit_DHT.DHT11 if cfg["dht_type"] == 11 else Adafruit_DHT.DHT22
    humidity, temperature = Adafruit_DHT.read(sensor, cfg["dht_pin"])
    if humidity is None or temperature is None:
        raise RuntimeError("DHT read returned nothing")
    return temperature, humidity, None


def _circuitpython(cfg, state):
    try:
        import adafruit_dht  # pylint: disable=import-outside-toplevel,import-error
        import board  # pylint: disable=import-outside-toplevel,import-error
    except (ImportError, NotImplementedError, RuntimeError) as exc:
        raise SensorUnavailable(f"driver circuitpython needs adafruit-circuitpython-dht and Blinka ({exc})") from exc
    device = state.get("device")
    if device is None:
        cls = adafruit_dht.DHT11 if cfg["dht_type"] == 11 else adafruit_dht.DHT22
        device = state["device"] = cls(getattr(board, f"D{cfg['dht_pin']}"))
    return device.temperature, device.humidity, None


READERS = {"simulated": _simulated, "adafruit_dht": _adafruit, "circuitpython": _circuitpython}


def _smoke(cfg, state):
    pin = cfg["smoke_pin"]
    if pin is None:
        return None
    choices = ("rpi", "gpiozero") if cfg["smoke_gpio"] == "auto" else (cfg["smoke_gpio"],)
    errors = []
    for choice in choices:
        try:
            if choice == "rpi":
                import RPi.GPIO as GPIO  # pylint: disable=import-outside-toplevel,import-error

                if not state.get("gpio_ready"):
                    GPIO.setmode(GPIO.BCM)
                    GPIO.setup(pin, GPIO.IN)
                    state["gpio_ready"] = True
                level = GPIO.input(pin)
            else:
                from gpiozero import DigitalInputDevice  # pylint: disable=import-outside-toplevel,import-error

                device = state.get("smoke_device") or state.setdefault("smoke_device", DigitalInputDevice(pin))
                level = device.value
        except (ImportError, RuntimeError) as exc:
            errors.append(f"{choice}: {exc}")
            continue
        return (not level) if cfg["smoke_active_low"] else bool(level)
    raise SensorUnavailable(f"smoke input on GPIO {pin} unavailable ({'; '.join(errors)})")


def read(cfg, state, sleep=time.sleep):
    """
    One reading: ``{"temperature", "humidity", "smoke", "attempts", "errors"}``
    (a value is None when its sensor could not be read).
    """
    reading = {"temperature": None, "humidity": None, "smoke": None, "attempts": 0, "errors": []}
    reader = READERS[cfg["driver"]]
    for attempt in range(1, cfg["retries"] + 1):
        reading["attempts"] = attempt
        try:
            temperature, humidity, smoke = reader(cfg, state)
            reading.update(temperature=temperature, humidity=humidity)
            if smoke is not None:
                reading["smoke"] = bool(smoke)
            break
        except SensorUnavailable as exc:
            reading["errors"].append(str(exc))
            break
        except Exception as exc:  # pylint: disable=broad-except  (DHT reads fail often)
            reading["errors"].append(f"attempt {attempt}: {exc}")
            if attempt < cfg["retries"]:
                sleep(cfg["retry_delay"])
    if cfg["driver"] != "simulated" or cfg["smoke_pin"] is not None:
        try:
            smoke = _smoke(cfg, state)
            if smoke is not None:
                reading["smoke"] = smoke
        except SensorUnavailable as exc:
            reading["errors"].append(str(exc))
    for key in ("temperature", "humidity"):
        if reading[key] is not None:
            reading[key] = round(float(reading[key]), 1)
    return reading


def evaluate(cfg, reading, alarms):
    """
    Alerts for threshold crossings since the last reading; ``alarms`` (kept by
    the caller between readings) holds each sensor's current level.
    """
    alerts = []
    for sensor in SENSORS:
        value = reading.get(sensor)
        if value is None:
            continue
        if sensor == "smoke":
            level = "smoke" if value else "ok"
            limits = None
        else:
            low, high = cfg[sensor]
            level = "low" if value < low else "high" if value > high else "ok"
            limits = [low, high]
        previous = alarms.get(sensor, "ok")
        if level != previous:
            alerts.append(
                {
                    "sensor": sensor,
                    "state": "clear" if level == "ok" else level,
                    "value": value,
                    "limits": limits,
                    "previous": previous,
                }
            )
        alarms[sensor] = level
    return alerts
