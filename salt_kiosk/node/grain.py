"""
The ``kiosk`` grain's facts, collected on every node (kiosks and relays): role,
identity, network, hardware, installed release, sensors. The inventory refresh
on the master of masters (:mod:`salt_kiosk.assets`) checks and stores them.

Nothing here raises: each probe that fails leaves its field out and logs why at
debug level.
"""

import logging
import os
import shutil
import socket

import salt.utils.network

from salt_kiosk.node import release_install

log = logging.getLogger(__name__)

ROLES = ("kiosk", "relay", "central")


def _read(path):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read().replace("\x00", "").strip()


def _probe(facts, field, func):
    try:
        value = func()
    except Exception as exc:  # pylint: disable=broad-except
        log.debug("kiosk grain: %s not collected: %s", field, exc)
        return
    if value not in (None, ""):
        facts[field] = value


def _cpuinfo(key):
    for line in _read("/proc/cpuinfo").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def _interfaces():
    out = {}
    for name, data in salt.utils.network.interfaces().items():
        if name == "lo" or not data.get("up"):
            continue
        entry = {}
        mac = data.get("hwaddr")
        if mac and mac != "00:00:00:00:00:00":
            entry["mac"] = mac.lower()
        addresses = [item["address"] for item in data.get("inet") or [] if item.get("address")]
        if addresses:
            entry["ipv4"] = addresses
        if entry:
            out[name] = entry
    return out


def _default_route_interface():
    with open("/proc/net/route", encoding="utf-8") as handle:
        for line in handle.read().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "00000000":
                return fields[0]
    return None


def collect(opts):
    """The ``kiosk`` grain: role, identity, network, hardware, release, sensors."""
    kiosk = opts.get("kiosk") or {}
    facts = {}
    _probe(facts, "hostname", socket.gethostname)
    facts["minion_id"] = opts.get("id")
    role = kiosk.get("role")
    if role not in ROLES:
        if role is not None:
            log.warning("kiosk grain: kiosk:role %r is not one of %s; guessing", role, ROLES)
        beacons = opts.get("beacons") or {}
        role = "relay" if ("kiosk_env" in beacons or kiosk.get("wol_source") or kiosk.get("release_root")) else "kiosk"
    facts["role"] = role
    if kiosk.get("campus"):
        facts["campus"] = str(kiosk["campus"])
    # The hostname is the unique identity when no code is configured.
    code = kiosk.get("code") or facts.get("hostname")
    if code:
        facts["code"] = str(code)
    _probe(facts, "interfaces", _interfaces)
    primary = kiosk.get("interface")
    if not primary:
        try:
            primary = _default_route_interface()
        except OSError as exc:
            log.debug("kiosk grain: no default route: %s", exc)
    interfaces = facts.get("interfaces") or {}
    if primary not in interfaces and interfaces:
        primary = sorted(interfaces)[0]
    if primary in interfaces:
        facts["interface"] = primary
        if interfaces[primary].get("ipv4"):
            facts["ip"] = interfaces[primary]["ipv4"][0]
        if interfaces[primary].get("mac"):
            facts["mac"] = interfaces[primary]["mac"]
    _probe(facts, "serial", lambda: _read("/sys/class/dmi/id/product_serial") or _cpuinfo("Serial"))
    _probe(facts, "vendor", lambda: _read("/sys/class/dmi/id/sys_vendor"))
    _probe(
        facts,
        "model",
        lambda: (
            _read("/sys/class/dmi/id/product_name")
            if os.path.exists("/sys/class/dmi/id/product_name")
            else _read("/proc/device-tree/model")
        ),
    )
    _probe(facts, "cpu", lambda: _cpuinfo("model name") or _cpuinfo("Hardware"))
    _probe(facts, "cpu_count", os.cpu_count)
    _probe(facts, "memory_mb", lambda: int(_read("/proc/meminfo").split("MemTotal:")[1].split()[0]) // 1024)
    _probe(facts, "disk_gb", lambda: round(shutil.disk_usage("/").total / 1e9, 1))

    _probe(facts, "release", lambda: release_install.current(opts)["version"])
    if role == "relay":
        beacon = (opts.get("beacons") or {}).get("kiosk_env")
        if beacon:
            settings = {}
            for item in beacon if isinstance(beacon, list) else [beacon]:
                if isinstance(item, dict):
                    settings.update(item)
            facts["sensors"] = {
                key: settings[key] for key in ("driver", "dht_type", "dht_pin", "smoke_pin") if key in settings
            }
    return facts
