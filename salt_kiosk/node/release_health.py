"""
The health gate of a release on a kiosk: the release's manifest, its checks and
its activation commands.

A release archive may carry a manifest ``kiosk-release.yaml`` at its top:

.. code-block:: yaml

    health:
      cmd: ["/opt/kiosk/bin/selftest", "--quick"]   # an argument list, never a shell string
      url: http://127.0.0.1:8080/health            # optional; 2xx is healthy
      timeout: 60                                   # seconds to keep trying (1-3600)
    pre_activate: ["systemctl", "stop", "kiosk-ui"]
    post_activate: ["systemctl", "start", "kiosk-ui"]

``kiosk_release.publish`` may give ``health_cmd``, ``health_url`` and
``health_timeout``, which override the manifest's ``health`` keys one by one.
The manifest is refused as a whole (the release is not installed, nothing is
run) when it is not a mapping of these keys, when a command is a string (a
shell command line) or holds anything but strings, when the URL is not http(s)
or a timeout is not a whole number of seconds from 1 to 3600. The master checks
it at publish time and every kiosk checks it again: a kiosk trusts no byte of a
release it did not check itself.

Every command runs as an argument list (``shell=False``) from the directory of
the release being activated, with stdin closed, a timeout and its output
capped; ``KIOSK_RELEASE_VERSION``, ``KIOSK_RELEASE_DIR`` and
``KIOSK_RELEASE_PREVIOUS`` are set in its environment. ``pre_activate`` and
``post_activate`` may each run for at most :data:`COMMAND_TIMEOUT` seconds.

The check passes when ``cmd`` exits 0 and ``url`` answers 2xx (both, when both
are given). It is tried every :data:`RETRY_INTERVAL` seconds until it passes or
``timeout`` seconds have gone by. See :func:`salt_kiosk.node.release_install.install`
for what happens around it.
"""

import os
import stat
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

from salt_kiosk import validate
from salt_kiosk.errors import KioskInputError

MANIFEST_NAME = "kiosk-release.yaml"

#: The manifest is a few lines; anything larger is not one.
MAX_MANIFEST_BYTES = 64 * 1024

DEFAULT_TIMEOUT = 60

MAX_TIMEOUT = 3600

#: Seconds ``pre_activate`` / ``post_activate`` may run.
COMMAND_TIMEOUT = 120

#: Seconds between two tries of the health check.
RETRY_INTERVAL = 2

#: Seconds one request to the health URL may take.
URL_TIMEOUT = 5

#: Characters of a check's output kept in the record of a rollback.
OUTPUT_CAP = 4000

MAX_ARGS = 64

MAX_ARG_CHARS = 4096

MAX_URL_CHARS = 2048

_TOP_KEYS = ("health", "pre_activate", "post_activate")

_HEALTH_KEYS = ("cmd", "url", "timeout")

_ARGV_ACCEPTED = 'an argument list such as ["/opt/kiosk/bin/selftest", "--quick"], never a shell string'


def check_argv(value, what):
    """Return ``value`` as a list of strings (an argv); raise naming ``what`` otherwise."""
    if isinstance(value, str):
        raise KioskInputError(f"{what} {validate.show(value)} is a string (accepted: {_ARGV_ACCEPTED})")
    if not isinstance(value, (list, tuple)) or not value:
        raise KioskInputError(f"{what} {validate.show(value)} is not a command (accepted: {_ARGV_ACCEPTED})")
    if len(value) > MAX_ARGS:
        raise KioskInputError(f"{what} has {len(value)} arguments (accepted: at most {MAX_ARGS})")
    argv = []
    for index, arg in enumerate(value):
        if not isinstance(arg, str):
            raise KioskInputError(
                f"{what}[{index}] {validate.show(arg)} is not a string (accepted: {_ARGV_ACCEPTED}; "
                'quote numbers, e.g. "5")'
            )
        if "\x00" in arg or len(arg) > MAX_ARG_CHARS:
            raise KioskInputError(
                f"{what}[{index}] {validate.show(arg)} is not a usable argument (accepted: at most "
                f"{MAX_ARG_CHARS} characters, no NUL)"
            )
        argv.append(arg)
    if not argv[0].strip():
        raise KioskInputError(f"{what} starts with an empty program name (accepted: {_ARGV_ACCEPTED})")
    return argv


def check_url(value, what="health url"):
    """Return ``value`` when it is an http(s) URL with a host; raise naming it otherwise."""
    accepted = "an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080/health"
    if not isinstance(value, str) or not value or len(value) > MAX_URL_CHARS or validate.unsafe_char(value):
        raise KioskInputError(f"{what} {validate.show(value)} is not a usable URL (accepted: {accepted})")
    if any(char.isspace() for char in value):
        raise KioskInputError(f"{what} {validate.show(value)} contains whitespace (accepted: {accepted})")
    try:
        parts = urllib.parse.urlsplit(value)
        host = parts.hostname
        _port = parts.port  # raises on a port that is not a number 0-65535
    except ValueError as exc:
        raise KioskInputError(
            f"{what} {validate.show(value)} is not a usable URL: {exc} (accepted: {accepted})"
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise KioskInputError(
            f"{what} {validate.show(value)} has the scheme {parts.scheme or 'none'!r} (accepted: {accepted})"
        )
    if not host:
        raise KioskInputError(f"{what} {validate.show(value)} has no host (accepted: {accepted})")
    return value


def check_timeout(value, what="health timeout"):
    """Return ``value`` as whole seconds from 1 to :data:`MAX_TIMEOUT`; raise naming it otherwise."""
    return validate.whole_number(value, what, 1, MAX_TIMEOUT, accepted=f"whole seconds from 1 to {MAX_TIMEOUT}")


def _mapping(value, what, keys):
    if not isinstance(value, dict):
        raise KioskInputError(f"{what} {validate.show(value)} is not a mapping (accepted keys: {', '.join(keys)})")
    unknown = sorted(str(key) for key in value if key not in keys)
    if unknown:
        raise KioskInputError(
            f"{what} has the unknown key(s) {', '.join(validate.show(k) for k in unknown)} "
            f"(accepted keys: {', '.join(keys)})"
        )
    return value


def check_health(value, what="health"):
    """``{"cmd", "url", "timeout"}`` of a health check (``cmd`` or ``url`` required), or None for None."""
    if value is None:
        return None
    _mapping(value, what, _HEALTH_KEYS)
    health = {
        "cmd": check_argv(value["cmd"], f"{what}.cmd") if value.get("cmd") is not None else None,
        "url": check_url(value["url"], f"{what}.url") if value.get("url") is not None else None,
        "timeout": check_timeout(value.get("timeout", DEFAULT_TIMEOUT), f"{what}.timeout"),
    }
    if health["cmd"] is None and health["url"] is None:
        raise KioskInputError(f"{what} has neither cmd nor url (accepted: at least one of them)")
    return health


def check_manifest(value, source=MANIFEST_NAME):
    """
    The checked manifest ``{"health", "pre_activate", "post_activate"}`` (each
    None when absent) from its parsed YAML ``value``; raise naming ``source``
    and the bad key otherwise.
    """
    if value is None:
        value = {}
    try:
        _mapping(value, "the manifest", _TOP_KEYS)
        manifest = {"health": check_health(value.get("health"))}
        for key in ("pre_activate", "post_activate"):
            manifest[key] = check_argv(value[key], key) if value.get(key) is not None else None
    except KioskInputError as exc:
        raise KioskInputError(f"release manifest {source} refused: {exc}") from None
    return manifest


def parse_manifest(raw, source=MANIFEST_NAME):
    """Check the bytes (or text) of a ``kiosk-release.yaml``; see :func:`check_manifest`."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise KioskInputError(
            f"release manifest {source} refused: it has {len(raw)} bytes (accepted: at most {MAX_MANIFEST_BYTES})"
        )
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise KioskInputError(f"release manifest {source} refused: it is not valid YAML ({exc})") from None
    return check_manifest(value, source)


def read_manifest(folder):
    """
    The checked manifest of the release unpacked in ``folder``, or None when it
    has none. The manifest must be a regular file (not a link) at the top.
    """
    path = os.path.join(folder, MANIFEST_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KioskInputError(f"release manifest {MANIFEST_NAME} refused: it is not a regular file ({exc})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise KioskInputError(f"release manifest {MANIFEST_NAME} refused: it is not a regular file")
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
    return parse_manifest(raw)


def manifest_of_archive(archive):
    """
    The checked manifest inside the open :class:`tarfile.TarFile` ``archive``
    (a top-level ``kiosk-release.yaml``), or None when it has none. Used by the
    master at publish time; nothing is extracted.
    """
    for member in archive:
        if [part for part in member.name.split("/") if part not in ("", ".")] != [MANIFEST_NAME]:
            continue
        if member.name.startswith("/"):
            continue
        if not member.isreg():
            raise KioskInputError(f"release manifest {MANIFEST_NAME} refused: it is not a regular file in the archive")
        if member.size > MAX_MANIFEST_BYTES:
            raise KioskInputError(
                f"release manifest {MANIFEST_NAME} refused: it has {member.size} bytes "
                f"(accepted: at most {MAX_MANIFEST_BYTES})"
            )
        return parse_manifest(archive.extractfile(member).read())
    return None


def check_overrides(health_cmd=None, health_url=None, health_timeout=None):
    """
    The publish-time overrides of the manifest's health keys, checked: a dict
    holding only the keys given (``cmd``, ``url``, ``timeout``), empty when none is.
    """
    overrides = {}
    if health_cmd is not None:
        overrides["cmd"] = check_argv(health_cmd, "health_cmd")
    if health_url is not None:
        overrides["url"] = check_url(health_url, "health_url")
    if health_timeout is not None:
        overrides["timeout"] = check_timeout(health_timeout, "health_timeout")
    return overrides


def check_settings(value, what="health settings"):
    """
    The publish-time settings as they travel (``{"cmd", "url", "timeout"}``,
    any of them, from the catalogue, a relay's ``release.json`` or a rollout),
    checked like :func:`check_overrides`; an empty dict for None.
    """
    if value is None:
        return {}
    _mapping(value, what, _HEALTH_KEYS)
    return check_overrides(value.get("cmd"), value.get("url"), value.get("timeout"))


def gate_of(manifest, overrides=None):
    """
    What the gate runs for a release: the manifest (or None) with the publish
    ``overrides`` (``{"cmd", "url", "timeout"}``, any of them) over its health
    keys; None when there is nothing to run at all.
    """
    manifest = dict(manifest or {"health": None, "pre_activate": None, "post_activate": None})
    overrides = check_settings(overrides)
    if overrides:
        merged = dict(manifest["health"] or {"cmd": None, "url": None, "timeout": DEFAULT_TIMEOUT})
        merged.update(overrides)
        manifest["health"] = check_health(merged, "health (with the publish overrides)")
    if not any(manifest.values()):
        return None
    return manifest


def _cap(text):
    if len(text) <= OUTPUT_CAP:
        return text
    return f"...({len(text) - OUTPUT_CAP} characters cut)...\n" + text[-OUTPUT_CAP:]


def run_command(argv, timeout, cwd, env=None):
    """
    Run ``argv`` (never through a shell) in ``cwd`` for at most ``timeout``
    seconds; return ``(ok, output)`` with stdout and stderr together, capped.
    """
    environ = dict(os.environ)
    environ.update(env or {})
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=max(1, timeout),
            check=False,
            shell=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output.decode("utf-8", "replace") if exc.output else ""
        return False, _cap(f"{argv[0]}: still running after {max(1, timeout):.0f} s, killed\n{output}")
    except OSError as exc:
        return False, f"{argv[0]}: could not be run: {exc.strerror or exc}"
    output = _cap(done.stdout.decode("utf-8", "replace"))
    if done.returncode != 0:
        return False, f"{argv[0]} exited with {done.returncode}\n{output}"
    return True, output


def probe_url(url, timeout=URL_TIMEOUT):
    """``(ok, text)``: ok when ``url`` answers 2xx within ``timeout`` seconds (no proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"{url} did not answer: {getattr(exc, 'reason', exc)}"
    if 200 <= status < 300:
        return True, f"{url} answered {status}"
    return False, f"{url} answered {status}"


def check_once(health, cwd, env, deadline, clock=time.monotonic):
    """One try of ``health``: ``(ok, output)``."""
    outputs = []
    if health.get("cmd"):
        ok, output = run_command(health["cmd"], deadline - clock(), cwd, env)
        outputs.append(output)
        if not ok:
            return False, "\n".join(outputs)
    if health.get("url"):
        ok, output = probe_url(health["url"], min(URL_TIMEOUT, max(1, deadline - clock())))
        outputs.append(output)
        if not ok:
            return False, "\n".join(outputs)
    return True, "\n".join(outputs)


def wait_healthy(health, cwd, env=None, clock=time.monotonic, sleep=time.sleep):
    """
    Try ``health`` until it passes or its ``timeout`` has gone by; return
    ``(ok, output of the last try, tries)``.
    """
    deadline = clock() + health["timeout"]
    tries = 0
    while True:
        tries += 1
        ok, output = check_once(health, cwd, env, deadline, clock)
        if ok:
            return True, output, tries
        left = deadline - clock()
        if left <= 0:
            return False, _cap(output), tries
        sleep(min(RETRY_INTERVAL, left))
