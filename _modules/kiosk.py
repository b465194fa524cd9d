"""
salt-kiosk execution module for kiosks and relays.

Configuration (minion config, ``kiosk:`` key; see also :mod:`salt_kiosk.config`):

``kiosk:wol_source``
    Relays: the local IPv4 address magic packets are sent from (the relay's
    address on the kiosk subnet when it has several). Default: chosen by the OS.

``kiosk:sweep_max_hosts``
    Relays: the most addresses one ``kiosk.sweep`` may cover (default 4096).

``kiosk:shutdown_command`` / ``kiosk:shutdown_cancel_command``
    Kiosks: argument lists replacing the built-in ``shutdown`` commands (a vendor
    power tool); items may use ``{delay}``, ``{minutes}``, ``{action}``
    (``poweroff``/``reboot``) and ``{message}``.

``kiosk:release_dir``
    Kiosks: where releases are installed, one directory per version plus the
    ``current`` symlink (default ``/opt/kiosk/releases``).

``kiosk:release_max_bytes`` / ``kiosk:release_max_members``
    Kiosks: the most bytes a release may take once installed (the release file
    plus everything it unpacks; default 1073741824, 1 GiB) and the most members
    a release archive may hold (default 20000). Every member is checked before
    anything is unpacked (no absolute names or ``..``, links only to places
    inside the release, no devices, FIFOs, setuid or setgid).

``kiosk:release_root``
    Relays: a ``file_roots`` directory of this relay's salt-master; releases
    are staged under ``<release_root>/kiosk_releases/`` (default ``/srv/salt``).

Events fired: none.
"""

from salt.exceptions import CommandExecutionError

try:
    import salt_kiosk
    from salt_kiosk import files
    from salt_kiosk.node import delivery, release_install, release_stage, sensors, wol
    from salt_kiosk.node import shutdown as kshutdown
    from salt_kiosk.node import sweep as ksweep

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

__virtualname__ = "kiosk"

#: The salt-kiosk release these loader modules belong to. Synced ``_modules``
#: (saltutil.sync_all) take precedence over the pip-installed ones, so it may
#: differ from the library's ``salt_kiosk.__version__``; release bumps change
#: both (tests/unit/test_versions.py checks that they agree in the checkout).
__kiosk_version__ = "0.1.0"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


def md5(path):
    """
    Return the md5 checksum (hex) of a file on this minion.

    path
        Absolute path of a regular file.

    CLI Example:

    .. code-block:: bash

        salt 'kiosk-*' kiosk.md5 /opt/kiosk/current/app.tar.gz
    """
    return files.md5_file(str(path))


def version():
    """
    Return the salt-kiosk versions serving this node: ``{"modules": the
    loader modules' version (these synced or installed ``_modules``),
    "library": the pip-installed ``salt_kiosk`` library's, "skew": True when
    they differ}``. ``salt-run kiosk_inventory.versions`` lists the nodes
    with a skew.

    CLI Example:

    .. code-block:: bash

        salt '*' kiosk.version
    """
    library = str(salt_kiosk.__version__)
    return {"modules": __kiosk_version__, "library": library, "skew": __kiosk_version__ != library}


def console_paths():
    """
    Return the ``rest_cherrypy`` options (``app``, ``app_path``, ``static``,
    ``static_path``) that serve the fleet console from the ``salt_kiosk``
    library installed on this machine. The formula's central role writes them
    into the master config of the master of masters (whose own minion runs
    the role); the console is static files and reads nothing from this node.

    CLI Example:

    .. code-block:: bash

        salt-call kiosk.console_paths
    """
    from salt_kiosk import console  # pylint: disable=import-outside-toplevel  (static files' paths only)

    return console.rest_cherrypy_settings()


def _config():
    return __opts__.get("kiosk") or {}


def wake(macs, broadcast=None, port=9, repeat=3, allow_unicast=False):
    """
    Send Wake-on-LAN magic packets from this relay.

    Every MAC and the broadcast address are checked before the first packet
    leaves; a list with one bad MAC sends nothing and the error names it.

    macs
        One MAC or a list of at most 4096 (``aa:bb:cc:dd:ee:ff``,
        ``aa-bb-...``, ``aabb.ccdd.eeff`` or ``aabbccddeeff``).

    broadcast
        Destination IPv4 address: the broadcast address of one of this
        relay's networks (a subnet-directed broadcast such as
        ``10.1.255.255``), a CIDR block such as ``10.1.0.0/16`` (its broadcast
        address is used), or nothing for ``255.255.255.255``. Multicast,
        ``0.0.0.0`` and reserved addresses are refused.

    port
        UDP port, 1-65535 (default 9).

    repeat
        Packets per MAC, 1-20 (default 3).

    allow_unicast
        Also accept a destination that is not a broadcast address of this
        relay's networks (one host, or a directed broadcast to a subnet the
        relay is not on). Default False.

    Returns ``{mac: {"address": ..., "port": ..., "packets": n}}``. A socket
    error while sending (for example a unicast host answering "port
    unreachable") is an error naming the address and how many packets went
    out.

    CLI Example:

    .. code-block:: bash

        salt relay-e1 kiosk.wake 02:00:5e:10:00:01 broadcast=10.1.255.255
        salt relay-e1 kiosk.wake '["02:00:5e:10:00:01", "0200.5e10.0002"]' broadcast=10.1.0.0/16 repeat=5
        salt relay-e1 kiosk.wake 02:00:5e:10:00:01 broadcast=10.1.0.21 allow_unicast=True
    """
    return wol.send(
        macs,
        broadcast=broadcast,
        port=port,
        repeat=repeat,
        source=_config().get("wol_source"),
        allow_unicast=allow_unicast,
    )


def _run_power_command(argv, test):
    """Run a power command (or, in test mode, report it)."""
    if test if test is not None else __opts__.get("test"):
        return {"test": True, "command": argv, "comment": "would run: " + " ".join(argv)}
    run = __salt__["cmd.run_all"](argv, python_shell=False, ignore_retcode=True)
    if run["retcode"] != 0:
        raise CommandExecutionError(
            f"{' '.join(argv)} failed with exit code {run['retcode']}: {(run['stderr'] or run['stdout']).strip()}"
        )
    return {"command": argv, "result": True, "output": run["stdout"].strip()}


def shutdown(delay=60, message=None, reboot=False, test=None):
    """
    Power this kiosk off (or reboot it) after ``delay`` seconds.

    Linux schedules in whole minutes (``shutdown -h -- +N [MESSAGE]``, rounded
    up; ``delay=0`` is ``now``; ``--`` keeps the message from ever being read
    as an option); Windows uses ``shutdown /s /t N``. ``kiosk:shutdown_command``
    replaces the built-in command.

    delay
        Seconds before the power-off, 0-86400 (default 60).

    message
        One line shown to logged-in users: at most 200 characters, no control,
        bidi or other format characters. On Windows, and with a
        ``kiosk:shutdown_command`` that has ``{message}`` at the start of an
        argument and no ``--`` item before it, it may not start with ``-``
        (nor ``/`` on Windows).

    reboot
        Reboot instead of powering off.

    test
        Report the command that would run, run nothing (also ``test=True`` in
        the minion config).

    CLI Example:

    .. code-block:: bash

        salt kiosk-e1 kiosk.shutdown
        salt kiosk-e1 kiosk.shutdown delay=300 message="Closing for the night"
        salt kiosk-e1 kiosk.shutdown test=True
    """
    argv = kshutdown.command(
        __grains__.get("kernel"),
        delay=delay,
        message=message,
        reboot=bool(reboot),
        template=_config().get("shutdown_command"),
    )
    done = _run_power_command(argv, test)
    if not done.get("test"):
        done.update(delay=kshutdown.check_delay(delay), reboot=bool(reboot))
    return done


def shutdown_cancel(test=None):
    """
    Cancel a pending shutdown of this kiosk (``shutdown -c`` / ``shutdown /a``).

    CLI Example:

    .. code-block:: bash

        salt kiosk-e1 kiosk.shutdown_cancel
    """
    argv = kshutdown.cancel_command(__grains__.get("kernel"), template=_config().get("shutdown_cancel_command"))
    return _run_power_command(argv, test)


def sweep(hosts, timeout=None, ports=None):
    """
    Check which hosts are up with ONE nmap process for the whole list
    (``nmap -sn -n``; with ``ports``, TCP SYN probes to those ports as well, for
    kiosks that drop ICMP).

    hosts
        IPv4 addresses and CIDR blocks (a list, or separated by commas or
        spaces). Anything else (options, file names, host names, shell
        characters) is refused before nmap starts, as is a list covering more
        than ``kiosk:sweep_max_hosts`` addresses.

    timeout
        Seconds nmap may take, 1-3600 (default 60; NaN and infinity are
        refused).

    ports
        TCP ports to probe as well (at most 64), e.g. ``[22, 5900]``.

    Returns ``{"up": [...], "down": [...], "up_count", "down_count", "total",
    "elapsed", "command"}``.

    CLI Example:

    .. code-block:: bash

        salt relay-e1 kiosk.sweep '["10.1.0.11", "10.1.0.12"]'
        salt relay-e1 kiosk.sweep 10.1.0.0/24 timeout=30 ports=22,5900
    """
    limit = int(_config().get("sweep_max_hosts", ksweep.DEFAULT_MAX_HOSTS))
    return ksweep.sweep(hosts, timeout=timeout, ports=ports, max_hosts=limit)


def deliver(source, dest, md5, mode=None, user=None, backup=True, makedirs=False):
    """
    Fetch ``source`` to ``dest`` with its md5 checked while streaming, and
    install it atomically (temporary file next to dest, fsync, rename).

    Nothing is transferred when dest already holds ``md5`` (``changed:
    False``). On an md5 mismatch dest is untouched, the partial file is removed
    and the error names the expected and the actual md5.

    source
        ``salt://path`` (this minion's master: on a kiosk, its campus relay),
        ``http(s)://...`` or an absolute local path.

    dest
        Absolute file path without ``..``; not a directory.

    md5
        Expected md5, 32 hex digits.

    mode
        File mode such as ``"0644"``: permission bits only, 0000-0777 (setuid,
        setgid and sticky are refused). Default: dest's permission bits, else
        0644.

    user
        Owner of the file (default: unchanged / the minion's user).

    backup
        Keep the replaced file as ``<dest>.kiosk-prev`` (``kiosk.restore``
        puts it back). Default True.

    makedirs
        Create dest's directory when missing (default False: an error).

    Returns ``{"dest", "md5", "changed", "bytes", "seconds", "backup", "changes"}``.

    CLI Example:

    .. code-block:: bash

        salt 'kiosk-*' kiosk.deliver salt://kiosk/files/app.conf /etc/kiosk/app.conf 0f343b0931126a20f133d67c2b018a3b
        salt kiosk-e1 kiosk.deliver https://repo.example/ui.css /opt/kiosk/ui.css 0f343b0931126a20f133d67c2b018a3b mode=0644
    """
    return delivery.deliver(
        source, dest, md5, mode=mode, user=user, backup=bool(backup), makedirs=bool(makedirs), opts=__opts__
    )


def restore(dest):
    """
    Put back the copy of ``dest`` that ``kiosk.deliver`` kept
    (``<dest>.kiosk-prev``), atomically. Running it twice swaps back.

    CLI Example:

    .. code-block:: bash

        salt kiosk-e1 kiosk.restore /etc/kiosk/app.conf
    """
    return delivery.restore(dest)


def release():
    """
    The release installed on this kiosk and the last install attempt.

    Returns ``{"version", "md5", "file", "path", "installed", "last_attempt":
    {"version", "md5", "ok", "error", "at", "rolled_back", "previous"},
    "pending"}``; ``version`` is None when no release is installed,
    ``rolled_back`` is true when the last attempt failed its health gate and
    the previous release came back (``error`` has the check's output),
    ``pending`` names a release whose health gate is running or was cut short
    by a power loss, ``masters`` lists this kiosk's relays and ``via`` the one
    this call came through (a rollout spreads the fetches over them).

    CLI Example:

    .. code-block:: bash

        salt 'kiosk-*' kiosk.release
    """
    info = release_install.current(__opts__)
    info["masters"] = release_install.configured_masters(__opts__)
    return info


def stage_release(version, url, md5, filename, latest=True, health=None):
    """
    Relays: stage a release into this syndic master's file root
    (``kiosk:release_root``) with its md5 checked, for the kiosks below.
    Called by ``salt-run kiosk_release.publish`` with a one-time URL of the
    master of masters' release server; rarely run by hand. ``health``: the
    publish-time health settings (``{"cmd", "url", "timeout"}``), written into
    the staged manifest for the kiosks.

    CLI Example:

    .. code-block:: bash

        salt relay-e1 kiosk.stage_release 1.4.0 http://central:8080/x/app.tar.gz 0f343b0931126a20f133d67c2b018a3b app.tar.gz
    """
    return release_stage.stage_local(__opts__, version, url, md5, filename, latest=bool(latest), health=health)


def promote_release(version):
    """
    Relays: point ``kiosk_releases/latest.json`` at an already staged release,
    so kiosks starting up install it. Called by ``salt-run
    kiosk_release.rollout`` for the whole fleet; rarely run by hand.

    CLI Example:

    .. code-block:: bash

        salt relay-e1 kiosk.promote_release 1.4.0
    """
    return release_stage.promote_local(__opts__, version)


def env(config=None):
    """
    Relays: read the environment sensors now, with the ``kiosk_env`` beacon's
    configuration (or ``config``), and return ``{"temperature", "humidity",
    "smoke", "attempts", "errors", "driver"}``.

    CLI Example:

    .. code-block:: bash

        salt 'relay-*' kiosk.env
    """
    if config is None:
        config = (__opts__.get("beacons") or {}).get("kiosk_env") or (__opts__.get("kiosk") or {}).get("sensors")
    if config is None:
        raise CommandExecutionError("no kiosk_env beacon (or kiosk:sensors) is configured on this minion")
    cfg = sensors.parse_config(config)
    reading = sensors.read(cfg, __context__.setdefault("kiosk.env.state", {}))
    reading["driver"] = cfg["driver"]
    return reading
