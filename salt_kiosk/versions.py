"""
Version skew across the fleet: the salt-kiosk loader modules a node runs
against the ``salt_kiosk`` library installed on it.

Synced ``_modules`` (``saltutil.sync_all`` from a checkout in ``file_roots``)
take precedence over the pip-installed ones, while the library always comes
from pip, so a node can run modules of one release over the library of
another. :func:`collect` publishes ``kiosk.version`` through the syndic tree
(:func:`salt_kiosk.fanout.run_jobs`) and reports, per node, both versions and
the nodes where they differ.

What a node answers is data: a version is accepted only as 1-64 characters of
ASCII letters, digits and ``. + ! _ -`` (starting with a letter or digit);
anything else is reported under ``failed``, escaped and capped.
"""

import re

from salt_kiosk import fanout, validate

#: What a version string may look like (PEP 440 and local versions fit).
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$")


def _version(value):
    return value if isinstance(value, str) and _VERSION_RE.fullmatch(value) else None


def summarize(answers):
    """
    Turn ``{minion: {"ret": kiosk.version's answer, "retcode": ...}}`` into
    ``{"nodes": {minion: {"modules", "library"}}, "skew": [minions whose modules
    and library differ], "unknown": [minions whose modules predate the
    modules' version], "failed": {minion: reason}}``.

    Modules older than the ``{"modules", "library", "skew"}`` answer return the
    library's version alone: such a node is listed with ``modules: None`` under
    ``unknown`` (sync the modules or upgrade the library to compare).
    """
    nodes, skew, unknown, failed = {}, [], [], {}
    for minion in sorted(answers):
        answer = answers[minion] if isinstance(answers[minion], dict) else {"ret": answers[minion]}
        ret = answer.get("ret")
        if fanout.failed(answer):
            failed[minion] = f"kiosk.version failed: {validate.show(ret, 200)}"
            continue
        if isinstance(ret, str) and _version(ret):
            nodes[minion] = {"modules": None, "library": ret}
            unknown.append(minion)
            continue
        modules = _version(ret.get("modules")) if isinstance(ret, dict) else None
        library = _version(ret.get("library")) if isinstance(ret, dict) else None
        if modules is None or library is None:
            failed[minion] = f"kiosk.version answered {validate.show(ret, 200)}, not a modules and a library version"
            continue
        nodes[minion] = {"modules": modules, "library": library}
        if modules != library:
            skew.append(minion)
    return {"nodes": nodes, "skew": skew, "unknown": unknown, "failed": failed}


def collect(opts, target="*", timeout=30, publish=fanout.run_jobs):
    """
    Ask the nodes matching ``target`` (a glob on minion ids, through the
    syndic tree) for ``kiosk.version``, waiting at most ``timeout`` seconds
    (1-3600); return :func:`summarize`'s report. Nodes that do not answer in
    time are not listed.
    """
    target = validate.minion_glob(target)
    timeout = validate.whole_number(timeout, "timeout", 1, 3600, accepted="whole seconds 1-3600")
    jobs = {"versions": {"tgt": target, "tgt_type": "glob", "fun": "kiosk.version"}}
    return summarize(publish(opts, jobs, timeout).get("versions") or {})
