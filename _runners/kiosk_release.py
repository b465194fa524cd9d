"""
Versioned releases from the master of masters: publish, roll back, fleet view.

A release travels in two verified hops:

1. ``publish`` copies the release file into this master's release store (md5
   computed, or checked when given), records it, and every relay's minion
   fetches it over HTTP from this master into its syndic master's file root,
   checking the md5 while streaming (``kiosk.stage_release``);
2. the kiosks apply ``kiosk_release.installed``: each fetches the file from its
   own syndic master (``salt://kiosk_releases/<version>/<file>``), checks the
   md5 recorded here again, installs it into a versioned directory and switches
   ``current`` atomically. ``publish`` does this for the kiosks of ``target``
   right away (``rollout=False`` only stages); kiosks that are off catch up at
   their next minion start (``srv/salt/kiosk/release.sls`` as startup state).

Configuration (master config, ``kiosk:`` key): ``db``, ``campuses`` (the relays
to stage on), and:

``release_sources``
    Absolute directories ``publish`` may read release files from; a path is
    checked after symbolic links and ``..`` are resolved. Default: none (local
    paths are refused until it is set).
``release_urls``
    http(s) URL prefixes ``publish`` may fetch from (redirects are followed
    only to allowed URLs). Default: none (URLs are refused).
``release_serve_address``
    The IP address of this master the hop-1 HTTP server binds to and the
    relays fetch from (the address their ``syndic_master`` points at).
    Default: the master's ``interface`` when it is one address; a master
    listening on every address (``0.0.0.0``) must set it. The server runs only
    while the relays fetch, and gives each relay its own random path that
    answers one GET.
``release_serve_port``
    Its TCP port (default 0: a free port each time; set one to open it in a
    firewall).
``release_store``
    Where published releases are kept (default ``<cachedir>/kiosk/releases``).

A source outside ``release_sources`` / ``release_urls`` is refused before it is
opened or fetched: nothing is read, recorded, stored or sent, and the error
says nothing about the file (not even its md5 when a wrong md5 is given).

Versions are PEP 440 strings (``1.4.0``, ``2026.11.2``). The CLI reads
``version=1.10`` as the number 1.1: quote such versions (``version='"1.10"'``).

Events fired on the master bus:

``kiosk/release/published``
    ``{"version", "md5", "file", "rollback_of", "staged", "failed", "silent"}``.

``kiosk/release/halted``
    ``{"rollout", "version", "wave", "waves", "failed", "answered",
    "max_failed", "reason"}``: a wave's failures crossed ``max_failed``.

``kiosk/release/rollout_done``
    ``{"rollout", "version"}``: every wave is done.

Fired by the kiosks themselves (and forwarded up the syndics):

``kiosk/release/rolled_back``
    ``{"version", "md5", "previous", "reason"}``: a release failed its health
    gate on that kiosk, which went back to its previous release. On the master
    bus it arrives as Salt carries minion events: ``{"id": <kiosk>, "data":
    {...}}``.
"""

try:
    from salt_kiosk import events as kevents
    from salt_kiosk.db import store
    from salt_kiosk.errors import refusals_exit_nonzero
    from salt_kiosk.node import release_health as health_module
    from salt_kiosk.releases import catalogue
    from salt_kiosk.releases import rollout as rollouts
    from salt_kiosk.releases import waves as waves_module

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

    def refusals_exit_nonzero(func):  # __virtual__ refuses the module; the name must still exist
        return func


__virtualname__ = "kiosk_release"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


def _user():
    return globals().get("__user__") or "unknown"


def _fire(data, tag):
    kevents.fire_master(__opts__, data, tag)


def _progress(data):
    """Progress the Salt way: ``salt-run`` prints it as the rollout goes."""
    jid_event = globals().get("__jid_event__")
    if jid_event is not None:
        jid_event.fire_event(data, "progress")


def _outcome(report, rollout=None):
    """
    A halted rollout makes ``salt-run`` exit non-zero: salt-run exits with
    the ``retcode`` of a runner's returned dict (``__context__`` marks the
    job as failed for salt-api and the job cache).
    """
    if (rollout or report).get("status") == waves_module.HALTED:
        __context__["retcode"] = 1
        report["retcode"] = 1
    return report


def _finish(release, rollout, target, timeout, wave_args):
    kstore = store.open_store(__opts__)
    staging = release["staging"]
    kevents.fire_master(
        __opts__,
        {
            "version": release["version"],
            "md5": release["md5"],
            "file": release["file"],
            "rollback_of": release["rollback_of"],
            "staged": staging["staged"],
            "failed": staging["failed"],
            "silent": staging["silent"],
        },
        "kiosk/release/published",
    )
    if rollout:
        release["rollout"] = waves_module.start(
            __opts__,
            kstore,
            release,
            target=target,
            timeout=timeout,
            user=_user(),
            progress=_progress,
            fire=_fire,
            **wave_args,
        )
        return _outcome(release, release["rollout"])
    return release


@refusals_exit_nonzero
def publish(
    version,
    source,
    md5=None,
    target="*",
    rollout=True,
    timeout=300,
    health_cmd=None,
    health_url=None,
    health_timeout=None,
    waves=None,
    max_failed=None,
    per_relay=None,
):
    """
    Publish release ``version`` from ``source`` and stage it on every relay
    (md5 verified there); with ``rollout`` (default) install it on the kiosks of
    ``target`` as well (md5 verified again on each kiosk).

    Publishing a version that exists with different content is refused;
    publishing it again with the same content re-stages it.

    version
        PEP 440 version string, e.g. ``1.4.0``.

    source
        Path of the release file inside one of ``kiosk:release_sources`` on
        this master, or an http(s) URL under one of ``kiosk:release_urls``.

    md5
        Expected md5 (checked before anything is recorded); computed when omitted.

    target
        Kiosks to install on: ``*``, ``campus:<name>``, ``group:<name>`` or
        ``id:<glob>`` (inventory).

    rollout
        Install on the kiosks now (default True); False only stages.
        Only a rollout to the whole fleet (``target='*'``) moves the relays'
        ``latest.json``, which kiosks install at minion start; a staged-only or
        partial release stays where it was put until ``kiosk_release.rollout``
        runs for ``'*'``.

    timeout
        Seconds to wait for the relays, and for the kiosks of each round
        (default 300).

    waves, max_failed, per_relay
        Roll out in waves (see ``kiosk_release.rollout``); checked before
        anything is published.

    health_cmd, health_url, health_timeout
        The release's health check, overriding the ``health`` keys of its
        manifest ``kiosk-release.yaml`` one by one: a command as an argument
        list (never a shell string), an http(s) URL that must answer 2xx, and
        the seconds to keep trying (1-3600, default 60). After ``current``
        switches on a kiosk the check runs until it passes or the time is up;
        a kiosk where it fails goes back to its previous release by itself
        (``rollout.rolled_back``, ``kiosk/release/rolled_back``). A hostile
        manifest or setting is refused here, before anything is recorded.

    Returns the release (``version``, ``file``, ``md5``, ``size``, ...) with
    ``staging`` (``staged`` / ``failed`` / ``silent`` relays, and
    ``served_from``, the address the relays fetched from) and ``rollout``
    (``installed`` / ``unchanged`` / ``failed`` / ``rolled_back`` / ``absent``
    kiosks).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_release.publish 1.4.0 /srv/releases/kiosk-ui-1.4.0.tar.gz
        salt-run kiosk_release.publish 1.4.1 https://build.example/releases/kiosk-ui-1.4.1.tar.gz md5=0f343b0931126a20f133d67c2b018a3b
        salt-run kiosk_release.publish 1.5.0 /srv/releases/ui.tar.gz target=campus:east rollout=False
        salt-run kiosk_release.publish 1.6.0 /srv/releases/ui.tar.gz health_cmd='["/opt/kiosk/bin/selftest", "--quick"]' health_timeout=90
    """
    kstore = store.open_store(__opts__)
    health = health_module.check_overrides(health_cmd, health_url, health_timeout) or None
    wave_args = {"waves": waves, "max_failed": max_failed, "per_relay": per_relay}
    if rollout:
        waves_module.check_start(kstore, target, timeout=timeout, **wave_args)
    # latest.json moves when the rollout is done (waves.drive), not at staging.
    release = catalogue.publish(
        __opts__, kstore, version, source, md5=md5, stage_timeout=int(timeout), latest=False, health=health
    )
    return _finish(release, rollout, target, int(timeout), wave_args)


@refusals_exit_nonzero
def rollback(to=None, version=None, target="*", rollout=True, timeout=300, waves=None, max_failed=None, per_relay=None):
    """
    Roll back the way operators do it: publish the content of release ``to``
    (default: the release before the latest) under a NEW, higher version, and
    roll it out like any release. Kiosks see an upgrade; the history stays
    linear and ``status`` shows who runs what.

    to
        The release whose content comes back (default: the previous one).

    version
        The new version number (default: the latest with its last number + 1,
        e.g. 1.4.0 -> 1.4.1).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_release.rollback
        salt-run kiosk_release.rollback to=1.3.2 version=1.4.2
    """
    kstore = store.open_store(__opts__)
    wave_args = {"waves": waves, "max_failed": max_failed, "per_relay": per_relay}
    if rollout:
        waves_module.check_start(kstore, target, timeout=timeout, **wave_args)
    release = catalogue.rollback(__opts__, kstore, to=to, version=version, stage_timeout=int(timeout), latest=False)
    return _finish(release, rollout, target, int(timeout), wave_args)


@refusals_exit_nonzero
def rollout(version=None, target="*", timeout=300, waves=None, max_failed=None, per_relay=None):
    """
    Install an already published release (default: the latest) on the kiosks
    of ``target`` through ``kiosk_release.installed``, in waves that stop
    themselves (each kiosk fetches from one of its relays and checks the md5
    recorded here, then runs the release's health gate).

    waves
        How far each wave reaches, cumulative: kiosk counts or shares of the
        target that grow, e.g. ``'[1, "10%", "50%", "100%"]'`` (default:
        one wave, ``["100%"]``). Members are spread across campuses and
        relays.

    max_failed
        The share of a wave's answering kiosks that may fail (install error,
        md5 mismatch, rolled back by the health gate) before the rollout
        halts, e.g. ``'5%'`` (default ``100%``: never). Kiosks that do not
        answer are not failures: they install at their next start once the
        rollout is done. A halted rollout fires ``kiosk/release/halted``,
        touches no further kiosk, and ``salt-run`` exits non-zero.

    per_relay
        At most this many kiosks fetch from one relay at a time (default: no
        limit).

    timeout
        Seconds to wait for the kiosks of each round (default 300).

    Only one rollout may be running or halted at a time; only a rollout of
    ``'*'`` that is done moves the relays' ``latest.json`` (what kiosks install
    at power-on). Returns the rollout (``id``, ``status``, ``waves`` with their
    state and counts, per kiosk ``kiosks``) with ``installed`` / ``unchanged``
    / ``failed`` / ``rolled_back`` / ``absent``.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_release.rollout
        salt-run kiosk_release.rollout 1.5.0 target=group:pilot
        salt-run kiosk_release.rollout 1.5.0 waves='[1, "10%", "50%", "100%"]' max_failed=5% per_relay=10
    """
    kstore = store.open_store(__opts__)
    release = catalogue.find_release(kstore, version)
    return _outcome(
        waves_module.start(
            __opts__,
            kstore,
            release,
            target=target,
            waves=waves,
            max_failed=max_failed,
            per_relay=per_relay,
            timeout=timeout,
            user=_user(),
            progress=_progress,
            fire=_fire,
        )
    )


@refusals_exit_nonzero
def resume(rollout=None, timeout=300):
    """
    Continue a halted rollout (default: the one running or halted) from the
    wave that halted, or one whose ``salt-run`` died mid-way (running, and
    its process on this master is gone or it was silent for 15 minutes). The wave's kiosks are asked first which
    release they run: those that have it are not sent it again. Resuming a
    rollout that is not halted is refused, naming its state.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_release.resume
        salt-run kiosk_release.resume rollout=7
    """
    kstore = store.open_store(__opts__)
    return _outcome(waves_module.resume(__opts__, kstore, rollout, timeout=timeout, progress=_progress, fire=_fire))


@refusals_exit_nonzero
def abort(rollout=None, rollback=False, timeout=300):
    """
    Stop a running or halted rollout (default: the active one): no further
    kiosk is touched. With ``rollback=True`` the kiosks it installed on get
    the release they ran before back (``reverted``; ``not_reverted`` says why
    not, e.g. a previous release that is not in the catalogue).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_release.abort
        salt-run kiosk_release.abort rollout=7 rollback=True
    """
    kstore = store.open_store(__opts__)
    return waves_module.abort(__opts__, kstore, rollout, rollback=bool(rollback), timeout=timeout)


def status(target="*", timeout=30):
    """
    Fleet-wide view of releases: asks every kiosk of ``target`` for its
    installed release and reports ``latest``, ``versions`` (kiosks per
    version), ``behind`` (kiosks not on the latest), ``failures`` (kiosk ->
    version and reason of its last failed install, e.g. an md5 mismatch on hop
    2), ``rolled_back`` (kiosk -> the version that failed its health gate
    there, the check's output and when), ``rollouts`` (the newest five: waves
    done / in progress / pending, and per kiosk installed / failed /
    rolled_back / absent with the reason), ``unreachable`` (with the last version seen) and ``stages`` (per relay,
    for the latest release).

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_release.status
        salt-run kiosk_release.status target=campus:east
    """
    kstore = store.open_store(__opts__)
    report = rollouts.status(__opts__, kstore, target=target, timeout=int(timeout))
    report["rollouts"] = waves_module.recent(kstore)
    return report


def list_():
    """
    Every published release, oldest first, with its md5 and what it rolled
    back to.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_release.list
    """
    return catalogue.list_releases(store.open_store(__opts__))


__func_alias__ = {"list_": "list"}
