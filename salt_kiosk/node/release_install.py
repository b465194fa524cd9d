"""
Release install on a kiosk (hop 2 of a release): fetch the release file from
the kiosk's own master (``salt://kiosk_releases/<version>/<file>``, staged there
by :mod:`salt_kiosk.node.release_stage`), check its md5 while streaming, unpack
archives after checking every member, and switch the ``current`` symlink
atomically with a rename. Also the version and file-name rules every side
shares (:func:`check_version`, :func:`check_filename`).

Layout on a kiosk: ``<kiosk:release_dir>/<version>/`` (default
``/opt/kiosk/releases``) with the release file (archives are unpacked next to
it), ``.kiosk-release.json`` inside each installed copy, the ``current``
symlink, and ``.kiosk-last-attempt.json`` recording the last install attempt.

Health gate: a release whose manifest (``kiosk-release.yaml``, see
:mod:`salt_kiosk.node.release_health`) or publish-time settings give a health
check or activation commands is activated in steps, with its pending state in
``.kiosk-pending.json`` so that a kiosk losing power in the middle finishes the
decision at its next start (:func:`finish_pending`, run first by the
``kiosk_release.installed`` state): ``pre_activate``, ``current`` switched,
``post_activate``, then the check until it passes or its timeout ends. On a
pass the release is kept (other copies pruned as usual). On a failure (of
``post_activate`` or of the check) ``current`` goes back atomically to the
previous release (or is removed when there was none), ``post_activate`` runs
again, the failed copy is removed, the last attempt records ``rolled_back``
with the check's output (capped), and ``kiosk/release/rolled_back`` is fired
(``{"version", "md5", "previous", "reason"}``) through the caller's ``fire``.

Trust: every member of a release archive is checked before anything is
unpacked (no absolute names, no ``..``, links only to places inside the
release, no devices, FIFOs, setuid or setgid, size and member caps),
independently of the Python version's ``tarfile`` filters, which stay as a
second layer.

Configuration (minion config, ``kiosk:`` key):

``release_dir``, ``release_keep``
    Where releases are installed (default ``/opt/kiosk/releases``) and how many
    versions stay (3).
``release_max_bytes``
    The most bytes a release may take once installed: the release file plus
    every member it unpacks (default 1 GiB).
``release_max_members``
    The most members a release archive may hold (default 20000).
"""

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
import time

from packaging.version import InvalidVersion, Version

from salt_kiosk import clock, config, files, validate
from salt_kiosk.errors import KioskInputError
from salt_kiosk.files import fsync_dir
from salt_kiosk.node import delivery, release_health

log = logging.getLogger(__name__)


DEFAULT_RELEASE_DIR = "/opt/kiosk/releases"


DEFAULT_KEEP = 3


STAGE_DIR = "kiosk_releases"


META_NAME = ".kiosk-release.json"


ATTEMPT_NAME = ".kiosk-last-attempt.json"


PENDING_NAME = ".kiosk-pending.json"


ROLLED_BACK_TAG = "kiosk/release/rolled_back"


#: In the message of every rollback by the health gate (and so in the failed
#: state's comment the master of masters reads).
ROLLED_BACK_MARK = "failed its health gate and was rolled back"


#: Characters of the rollback reason sent in the event (the attempt keeps more).
EVENT_REASON_CAP = 1000


ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


DEFAULT_MAX_BYTES = 1024**3


DEFAULT_MAX_MEMBERS = 20000


#: Marks a second directory of one version (a reinstall with other content):
#: ``1.4.0~3f9a0c1e``. ``~`` never occurs in a normalised version.
COPY_MARK = "~"


#: Symbolic links followed while resolving one link, as Linux does (MAXSYMLINKS).
MAX_LINK_HOPS = 40


_VERSION_CHARS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,63}$")


def check_version(value):
    """
    Return the normalised version string (PEP 440, e.g. ``1.4.0``, ``2026.11.2``,
    ``1.5rc1``); raise naming the value otherwise.
    """
    text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _VERSION_CHARS.match(text):
        raise KioskInputError(
            f"version {value!r} is not a valid version string: expected dotted numbers such as 1.4.0 (PEP 440)"
        )
    try:
        return str(Version(text))
    except InvalidVersion as exc:
        raise KioskInputError(
            f"version {value!r} is not a valid version string: expected dotted numbers such as 1.4.0 (PEP 440)"
        ) from exc


def version_key(version):
    return Version(version)


RESERVED_NAMES = ("release.json", "latest.json", "current")


def check_filename(name):
    if (
        not isinstance(name, str)
        or not name
        or "/" in name
        or "\\" in name
        or name in (".", "..")
        or name.startswith(".")
    ):
        raise KioskInputError(f"release file name {name!r} is not a plain file name")
    if name in RESERVED_NAMES:
        raise KioskInputError(
            f"release file name {name!r} is reserved (used for {', '.join(RESERVED_NAMES)}); rename the file"
        )
    return name


def release_dir(opts):
    return (opts.get("kiosk") or {}).get("release_dir") or DEFAULT_RELEASE_DIR


def current(opts):
    """
    The installed release on this kiosk: ``{"version", "md5", "file", "path",
    "installed", "last_attempt"}`` (``version`` None when nothing is installed).
    """
    base = release_dir(opts)
    link = os.path.join(base, "current")
    info = {"version": None, "md5": None, "file": None, "path": None, "installed": None}
    if os.path.islink(link):
        target = os.path.realpath(link)
        meta = files.read_json(os.path.join(target, META_NAME)) or {}
        info.update(
            version=meta.get("version"),
            md5=meta.get("md5"),
            file=meta.get("file"),
            path=target,
            installed=meta.get("installed"),
        )
    info["last_attempt"] = files.read_json(os.path.join(base, ATTEMPT_NAME))
    via = opts.get("master")
    info["via"] = via if isinstance(via, str) else None
    pending = files.read_json(os.path.join(base, PENDING_NAME))
    info["pending"] = {"version": pending.get("version"), "started": pending.get("started")} if pending else None
    return info


def configured_masters(opts):
    """
    The masters this minion is configured with (a kiosk: the relays of its
    campus), as addresses. A multi-master minion's job sees only the master
    the job came through in its options, so the list is read from its
    configuration file then.
    """
    masters = opts.get("master")
    if isinstance(masters, (list, tuple)):
        return [str(master) for master in masters]
    conf = opts.get("conf_file")
    if conf and os.path.isfile(conf):
        import salt.config  # pylint: disable=import-outside-toplevel

        try:
            configured = salt.config.minion_config(conf).get("master")
        except Exception as exc:  # pylint: disable=broad-except
            log.warning("kiosk release: could not read the masters of %s: %s", conf, exc)
            configured = None
        if isinstance(configured, (list, tuple)):
            return [str(master) for master in configured]
        if configured:
            return [str(configured)]
    return [str(masters)] if masters else []


def fetch_opts(opts, relay=None):
    """
    The options to fetch ``salt://`` with from ``relay`` (one of this kiosk's
    configured masters; a rollout spreads the fetches over the relays of a
    campus): ``opts`` itself when ``relay`` is None or the master this job came
    through. A relay that is not one of this kiosk's masters is refused.
    """
    if relay is None or relay == opts.get("master"):
        return opts
    masters = configured_masters(opts)
    if relay not in masters:
        raise KioskInputError(
            f"relay {validate.show(relay)} is not one of this kiosk's masters (accepted: {', '.join(masters) or 'none'})"
        )
    port = opts.get("master_port") or 4506
    host = f"[{relay}]" if ":" in relay else relay
    fetch = dict(opts)
    fetch.update(master=relay, master_ip=relay, master_uri=f"tcp://{host}:{port}")
    return fetch


def manifest_from_master(opts, version="latest"):
    """Read ``latest.json`` (or a version's ``release.json``) from this minion's master."""
    name = "latest.json" if version == "latest" else f"{check_version(version)}/release.json"
    try:
        raw = b"".join(delivery.open_source(f"salt://{STAGE_DIR}/{name}", opts=opts))
    except delivery.KioskDeliveryError:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise delivery.KioskDeliveryError(f"salt://{STAGE_DIR}/{name} is not valid JSON: {exc}") from exc


def _record_attempt(opts, version, ok, error=None, **extra):
    base = release_dir(opts)
    os.makedirs(base, exist_ok=True)
    record = {"version": version, "ok": ok, "error": error, "at": clock.now_iso(), "rolled_back": False}
    record.update(extra)
    files.write_json(os.path.join(base, ATTEMPT_NAME), record)


def _switch_current(base, name):
    tmp = os.path.join(base, f".current.{secrets.token_hex(4)}")
    os.symlink(name, tmp)
    os.replace(tmp, os.path.join(base, "current"))
    fsync_dir(base)


class ReleaseRolledBack(delivery.KioskDeliveryError):
    """The release failed its health gate; ``current`` went back to the previous release."""


class UnsafeArchive(delivery.KioskDeliveryError):
    """A release archive was refused before anything was unpacked; the message names the member and why."""


def _positive_int(opts, key, default, unit):
    return validate.whole_number(
        config.section(opts).get(key, default),
        f"kiosk:{key}",
        1,
        validate.MAX_WHOLE,
        accepted=f"a positive number of {unit}, default {default}",
    )


def install_limits(opts):
    """
    ``{"max_bytes", "max_members"}`` from ``kiosk:release_max_bytes`` (default
    1 GiB: the release file plus everything it unpacks) and
    ``kiosk:release_max_members`` (default 20000).
    """
    return {
        "max_bytes": _positive_int(opts, "release_max_bytes", DEFAULT_MAX_BYTES, "bytes"),
        "max_members": _positive_int(opts, "release_max_members", DEFAULT_MAX_MEMBERS, "archive members"),
    }


_DIR, _FILE, _SYMLINK, _HARDLINK = "directory", "file", "symbolic link", "hard link"


_TYPE_NAMES = {
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}


_ACCEPTED = "accepted: regular files, directories, and links to places inside the release"


def _archive_path(value, what):
    """The components of a member name (or hard link target): relative, no ``..``."""
    if not isinstance(value, str) or "\x00" in value:
        raise UnsafeArchive(f"{what} {value!r} is not a usable name ({_ACCEPTED})")
    if value.startswith("/"):
        raise UnsafeArchive(f"{what} {value!r} is an absolute path ({_ACCEPTED}, by relative names)")
    parts = tuple(part for part in value.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafeArchive(f"{what} {value!r} contains '..' ({_ACCEPTED}, by names without '..')")
    return parts


def _resolve_link(kinds, links, parts, target):
    """
    Resolve symbolic link ``parts`` -> ``target`` over the archive's own
    members, component by component as the kernel does (``..`` after a link
    leaves the link's target, not its name); raise when it leaves the release
    directory or does not end within :data:`MAX_LINK_HOPS` links.
    """
    name = "/".join(parts)
    hops = [0]

    def walk(stack, path):
        if path.startswith("/"):
            raise UnsafeArchive(
                f"member {name!r} is a symbolic link leading to the absolute path {path!r} ({_ACCEPTED})"
            )
        for comp in path.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not stack:
                    raise UnsafeArchive(
                        f"member {name!r} is a symbolic link to {target!r}, which leads outside the release "
                        f"directory ({_ACCEPTED})"
                    )
                stack.pop()
                continue
            stack.append(comp)
            key = tuple(stack)
            if kinds.get(key) == _SYMLINK:
                hops[0] += 1
                if hops[0] > MAX_LINK_HOPS:
                    raise UnsafeArchive(
                        f"member {name!r} is a symbolic link to {target!r} that does not resolve within "
                        f"{MAX_LINK_HOPS} links ({_ACCEPTED})"
                    )
                stack.pop()
                stack = walk(stack, links[key])
        return stack

    walk(list(parts[:-1]), target)


def check_members(archive, max_bytes=DEFAULT_MAX_BYTES, max_members=DEFAULT_MAX_MEMBERS, used=0, reserved=()):
    """
    Check every member of the open :class:`tarfile.TarFile` ``archive`` before
    anything is extracted, independently of tarfile's own filters; return the
    members to extract, owned by this process and without group/other write
    bits. Raise :class:`UnsafeArchive` naming the first member that:

    - has an absolute name or a ``..`` component, or a top-level name in
      ``reserved``;
    - is a device, a FIFO or any other special file, or has the setuid or
      setgid bit;
    - is written below a symbolic link, a hard link or a file of the archive,
      or repeats a name (except directories);
    - is a symbolic link that, resolved over the archive's own members, leaves
      the release directory, or a hard link to anything but a regular file
      earlier in the archive;
    - makes the archive exceed ``max_members`` members or ``max_bytes`` bytes
      (``used``: bytes already taken, e.g. the release file itself).
    """
    kinds = {}  # components -> kind; parent directories are implied by their members
    links = {}  # components -> target of each symbolic link
    sizes = {}  # components -> bytes of each regular file
    total = used
    members = []
    for count, member in enumerate(archive, start=1):
        if count > max_members:
            raise UnsafeArchive(
                f"release archive has more than {max_members} members (kiosk:release_max_members); "
                f"refused at member {member.name!r}"
            )
        name = member.name
        parts = _archive_path(name, "member")
        if not parts:
            if member.isdir():
                continue  # the archive's own top directory ("./"): the release directory itself
            raise UnsafeArchive(f"member {name!r} has no name ({_ACCEPTED})")
        if parts[0] in reserved:
            raise UnsafeArchive(f"member {name!r} would replace {parts[0]!r}, which the release itself uses")
        if member.mode & (stat.S_ISUID | stat.S_ISGID):
            raise UnsafeArchive(
                f"member {name!r} has the setuid or setgid bit (mode {member.mode:04o}; accepted: modes without them)"
            )
        for depth in range(1, len(parts)):
            prefix = parts[:depth]
            kind = kinds.setdefault(prefix, _DIR)
            if kind != _DIR:
                raise UnsafeArchive(
                    f"member {name!r} would be written through the {kind} {'/'.join(prefix)!r} "
                    f"({_ACCEPTED}; nothing is written below a link)"
                )
        previous = kinds.get(parts)
        if member.isdir():
            if previous not in (None, _DIR):
                raise UnsafeArchive(f"member {name!r} appears twice in the archive (a {previous}, then a directory)")
            kinds[parts] = _DIR
            member.mode = (member.mode & 0o755) | 0o700
        else:
            if previous is not None:
                raise UnsafeArchive(
                    f"member {name!r} appears twice in the archive (a {previous}, then again): accepted: each name once"
                )
            size = 0
            if member.isreg():
                kinds[parts] = _FILE
                size = sizes[parts] = member.size
                member.mode &= 0o755
            elif member.issym():
                if not member.linkname:
                    raise UnsafeArchive(f"member {name!r} is a symbolic link without a target ({_ACCEPTED})")
                kinds[parts] = _SYMLINK
                links[parts] = member.linkname
            elif member.islnk():
                target = _archive_path(member.linkname, f"member {name!r}: hard link target")
                if kinds.get(target) not in (_FILE, _HARDLINK):
                    raise UnsafeArchive(
                        f"member {name!r} is a hard link to {member.linkname!r}, which is not a regular file "
                        f"earlier in the archive ({_ACCEPTED})"
                    )
                kinds[parts] = _HARDLINK
                # tarfile copies the target when it cannot link: count it.
                size = sizes[parts] = sizes[target]
            else:
                kind = _TYPE_NAMES.get(member.type, f"special file (tar type {member.type!r})")
                raise UnsafeArchive(f"member {name!r} is a {kind} ({_ACCEPTED})")
            total += size
            if total > max_bytes:
                raise UnsafeArchive(
                    f"release would take more than {max_bytes} bytes once unpacked (kiosk:release_max_bytes, "
                    f"counting the release file itself); refused at member {name!r}"
                )
        # Unpacked as this process's user, whatever the archive says.
        member.uid, member.gid, member.uname, member.gname = os.geteuid(), os.getegid(), "", ""
        members.append(member)
    for parts, target in links.items():
        _resolve_link(kinds, links, parts, target)
    return members


def _unpack(folder, filename, limits):
    """Check every member of the release archive, then extract them into ``folder``."""
    path = os.path.join(folder, filename)
    try:
        with tarfile.open(path, "r:*") as archive:
            members = check_members(
                archive,
                limits["max_bytes"],
                limits["max_members"],
                used=os.path.getsize(path),
                reserved=(filename, META_NAME),
            )
            # tarfile's data filter (where this Python has it) is a second layer only.
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(folder, members=members, **extra)
    except UnsafeArchive as exc:
        raise UnsafeArchive(f"release file {filename} refused, nothing unpacked: {exc}") from None
    except tarfile.TarError as exc:
        raise delivery.KioskDeliveryError(f"release file {filename} could not be unpacked: {exc}") from exc


def _copies(base, version):
    """Directory names holding ``version``: ``<version>`` and ``<version>~<suffix>``."""
    return sorted(
        name
        for name in os.listdir(base)
        if (name == version or name.startswith(version + COPY_MARK))
        and os.path.isdir(os.path.join(base, name))
        and not os.path.islink(os.path.join(base, name))
    )


def _installed_copy(base, version, md5, filename):
    """A complete directory of ``version`` with content ``md5`` already on disk, or None."""
    for name in _copies(base, version):
        folder = os.path.join(base, name)
        meta = files.read_json(os.path.join(folder, META_NAME))
        if meta and meta.get("md5") == md5 and os.path.isfile(os.path.join(folder, filename)):
            return folder
    return None


def _fresh_name(base, version):
    name = version
    while os.path.lexists(os.path.join(base, name)):
        name = f"{version}{COPY_MARK}{secrets.token_hex(4)}"
    return os.path.join(base, name)


def install(opts, version, md5, filename, source=None, health=None, fire=None, relay=None):
    """
    Install ``version`` on this kiosk: fetch ``source`` (default
    ``salt://kiosk_releases/<version>/<filename>`` from this minion's master)
    into a new directory with the md5 checked, check every member of an
    archive and unpack it, check its manifest, then switch the ``current``
    symlink atomically and run the health gate (see the module documentation;
    ``health``: the publish-time ``{"cmd", "url", "timeout"}`` overriding the
    manifest's, ``fire(data, tag)``: where ``kiosk/release/rolled_back`` goes,
    ``relay``: the master to fetch from, see :func:`fetch_opts`).
    A failure leaves ``current`` where it was and is recorded as the last
    attempt (``kiosk.release`` reports it); a failed gate raises
    :class:`ReleaseRolledBack` after putting the previous release back.

    The directory ``current`` points at is never touched before its
    replacement is complete: a release is unpacked into a hidden staging
    directory, synced to disk, renamed to ``<version>`` (or
    ``<version>~<suffix>`` when a copy of that version with other content is
    there, e.g. the current one), ``current`` is switched, and only then (once
    healthy) is the other copy removed.
    """
    version = check_version(version)
    md5 = delivery.check_md5(md5)
    filename = check_filename(filename)
    release_health.gate_of(None, health)  # bad publish-time settings: refused before anything is fetched
    source_opts = fetch_opts(opts, relay)
    limits = install_limits(opts)
    source = source or f"salt://{STAGE_DIR}/{version}/{filename}"
    base = release_dir(opts)
    os.makedirs(base, exist_ok=True)
    finish_pending(opts, fire=fire, quiet=True)
    now = current(opts)
    if now["version"] == version and now["md5"] == md5:
        return {"version": version, "changed": False, "previous": version, "path": now["path"]}
    _clean_leftovers(base)
    # When the fetch started and how long it took (a rollout's per-relay load can be read back from these).
    timing = {"started": clock.now_iso(), "fetch_seconds": None}
    try:
        folder = _installed_copy(base, version, md5, filename)
        if folder is None:
            staging = tempfile.mkdtemp(prefix=f".{version}.", dir=base)
            try:
                fetching = time.monotonic()
                delivery.deliver(source, os.path.join(staging, filename), md5, backup=False, opts=source_opts)
                timing["fetch_seconds"] = round(time.monotonic() - fetching, 3)
                if filename.endswith(ARCHIVE_SUFFIXES):
                    _unpack(staging, filename, limits)
                elif os.path.getsize(os.path.join(staging, filename)) > limits["max_bytes"]:
                    raise delivery.KioskDeliveryError(
                        f"release file {filename} is larger than {limits['max_bytes']} bytes (kiosk:release_max_bytes)"
                    )
                gate = release_health.gate_of(release_health.read_manifest(staging), health)
                os.chmod(staging, 0o755)
                files.write_json(
                    os.path.join(staging, META_NAME),
                    {"version": version, "md5": md5, "file": filename, "installed": clock.now_iso()},
                )
                # Everything unpacked reaches the disk before the directory
                # gets its name and current points at it (kiosks are powered
                # off every night).
                os.sync()
                folder = _fresh_name(base, version)
                os.replace(staging, folder)
                fsync_dir(base)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        else:
            gate = release_health.gate_of(release_health.read_manifest(folder), health)
        if gate is not None:
            pending = {
                "version": version,
                "md5": md5,
                "file": filename,
                "folder": os.path.basename(folder),
                "previous": os.path.basename(now["path"]) if now["path"] else None,
                "previous_version": now["version"],
                "gate": gate,
                "started": clock.now_iso(),
                "timing": timing,
            }
            files.write_json(os.path.join(base, PENDING_NAME), pending)
            return _activate(opts, base, pending, fire)
        _switch_current(base, os.path.basename(folder))
        _drop_other_copies(base, version, folder)
    except ReleaseRolledBack:
        raise
    except Exception as exc:
        _record_attempt(opts, version, False, str(exc), md5=md5, **timing)
        raise
    return _commit(opts, base, version, md5, folder, now["version"], timing=timing)


def _drop_other_copies(base, version, folder):
    for name in _copies(base, version):
        if name != os.path.basename(folder):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _commit(opts, base, version, md5, folder, previous, health=None, timing=None):
    _record_attempt(opts, version, True, md5=md5, health=health, **(timing or {}))
    removed = _prune(
        base, keep=int(config.section(opts).get("release_keep", DEFAULT_KEEP)), current=os.path.basename(folder)
    )
    return {"version": version, "changed": True, "previous": previous, "path": folder, "pruned": removed}


def _gate_env(pending, folder):
    return {
        "KIOSK_RELEASE_VERSION": pending["version"],
        "KIOSK_RELEASE_DIR": folder,
        "KIOSK_RELEASE_PREVIOUS": pending.get("previous_version") or "",
    }


def _drop_pending(base):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(base, PENDING_NAME))
    fsync_dir(base)


def _activate(opts, base, pending, fire, resumed=False):
    """
    Run the gate of ``pending`` (see the module documentation); ``resumed``: a
    decision cut short by a power loss, finished at start (``pre_activate``
    ran before the loss or never matters: the kiosk just booted).
    """
    version, folder = pending["version"], os.path.join(base, pending["folder"])
    previous = os.path.join(base, pending["previous"]) if pending.get("previous") else None
    if previous is not None and not os.path.isdir(previous):
        previous = None
    gate, env = pending["gate"], _gate_env(pending, folder)
    if not resumed and gate["pre_activate"]:
        ok, output = release_health.run_command(gate["pre_activate"], release_health.COMMAND_TIMEOUT, folder, env)
        if not ok:
            # Nothing switched: bring back what pre_activate stopped.
            if gate["post_activate"]:
                release_health.run_command(gate["post_activate"], release_health.COMMAND_TIMEOUT, previous or base, env)
            _drop_pending(base)
            shutil.rmtree(folder, ignore_errors=True)
            error = f"release {version} not activated: pre_activate failed, current stays at "
            error += f"{pending.get('previous_version') or 'no release'}: {output}"
            _record_attempt(opts, version, False, error, md5=pending["md5"])
            raise delivery.KioskDeliveryError(error)
    if os.path.realpath(os.path.join(base, "current")) != os.path.realpath(folder):
        _switch_current(base, pending["folder"])
    healthy, output = True, ""
    if gate["post_activate"]:
        healthy, output = release_health.run_command(gate["post_activate"], release_health.COMMAND_TIMEOUT, folder, env)
        if not healthy:
            output = f"post_activate failed: {output}"
    if healthy and gate["health"]:
        healthy, output, tries = release_health.wait_healthy(gate["health"], folder, env)
        if not healthy:
            output = f"health check failed after {tries} tries in {gate['health']['timeout']} s: {output}"
    if healthy:
        _drop_pending(base)
        _drop_other_copies(base, version, folder)
        done = _commit(
            opts, base, version, pending["md5"], folder, pending.get("previous_version"), output, pending.get("timing")
        )
        done["health"] = output
        return done
    return _roll_back(opts, base, pending, previous, output, fire)


def _roll_back(opts, base, pending, previous, reason, fire):
    version, folder = pending["version"], os.path.join(base, pending["folder"])
    back_to = pending.get("previous_version") if previous else None
    if previous is not None:
        _switch_current(base, os.path.basename(previous))
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(base, "current"))
        fsync_dir(base)
    gate = pending["gate"]
    if gate["post_activate"] and previous is not None:
        release_health.run_command(
            gate["post_activate"], release_health.COMMAND_TIMEOUT, previous, _gate_env(pending, previous)
        )
    _drop_pending(base)
    shutil.rmtree(folder, ignore_errors=True)
    message = f"release {version} {ROLLED_BACK_MARK} to {back_to or 'no release'}: {reason}"
    _record_attempt(
        opts,
        version,
        False,
        message,
        md5=pending["md5"],
        rolled_back=True,
        previous=back_to,
        **(pending.get("timing") or {}),
    )
    log.warning("%s", message)
    if fire is not None:
        try:
            fire(
                {
                    "version": version,
                    "md5": pending["md5"],
                    "previous": back_to,
                    "reason": reason[-EVENT_REASON_CAP:],
                },
                ROLLED_BACK_TAG,
            )
        except Exception as exc:  # pylint: disable=broad-except
            log.warning("kiosk release: %s not fired: %s", ROLLED_BACK_TAG, exc)
    raise ReleaseRolledBack(message)


def _check_pending(base, pending):
    """The pending record read back from disk, checked (it names directories inside ``base`` only)."""
    if not isinstance(pending, dict):
        raise delivery.KioskDeliveryError(f"{PENDING_NAME} is not a JSON object")
    for key in ("folder", "previous"):
        name = pending.get(key)
        if name is None and key == "previous":
            continue
        if not isinstance(name, str) or not name or "/" in name or name.startswith(".") or name == "current":
            raise delivery.KioskDeliveryError(f"{PENDING_NAME} names {key} {name!r}, not a release directory")
    checked = dict(pending)
    checked["version"] = check_version(pending.get("version"))
    checked["md5"] = delivery.check_md5(pending.get("md5"))
    gate = pending.get("gate") or {}
    checked["gate"] = release_health.check_manifest(gate, PENDING_NAME)
    return checked


def finish_pending(opts, fire=None, quiet=False):
    """
    Finish a health gate a power loss cut short (``.kiosk-pending.json`` is
    there): switch to the pending release if needed, run ``post_activate`` and
    the check, keep it or roll back. Return the outcome (None when nothing was
    pending); a rollback raises :class:`ReleaseRolledBack` unless ``quiet``.
    """
    base = release_dir(opts)
    path = os.path.join(base, PENDING_NAME)
    if not os.path.exists(path):
        return None
    try:
        pending = _check_pending(base, files.read_json(path))
    except (ValueError, KioskInputError, delivery.KioskDeliveryError) as exc:
        log.warning("kiosk release: %s dropped, current left as it is: %s", path, exc)
        _drop_pending(base)
        return None
    if not os.path.isdir(os.path.join(base, pending["folder"])):
        _drop_pending(base)
        return None
    log.warning(
        "kiosk release: finishing the health gate of %s cut short at %s", pending["version"], pending["started"]
    )
    try:
        return _activate(opts, base, pending, fire, resumed=True)
    except ReleaseRolledBack as exc:
        if quiet:
            return {"version": pending["version"], "changed": False, "rolled_back": True, "error": str(exc)}
        raise


def _clean_leftovers(base):
    """Remove what an install cut short (power loss) left behind: hidden staging dirs and links."""
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if not name.startswith(".") or name in (ATTEMPT_NAME,):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif name.startswith(".current.") or name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _prune(base, keep, current):
    """
    Keep the ``keep`` newest versions (always the directory ``current`` names,
    one directory per kept version); remove the others.
    """
    by_version = {}
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if name.startswith(".") or name == "current" or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            key = Version(name.split(COPY_MARK, 1)[0])
        except InvalidVersion:
            continue
        by_version.setdefault(key, []).append(name)
    removed = []
    for index, key in enumerate(sorted(by_version, reverse=True)):
        names = by_version[key]
        if current in names:
            kept = current
        elif index < max(keep, 1):
            kept = max(names, key=lambda n: os.stat(os.path.join(base, n)).st_mtime)
        else:
            kept = None
        for name in sorted(names):
            if name != kept:
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
                removed.append(name)
    return removed
