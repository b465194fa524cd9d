"""
Publishing jobs from the master of masters through the syndic tree.

:func:`run_jobs` publishes several jobs at once (one per campus, typically) and
gathers their returns; each job runs in its own thread with its own
``LocalClient``, so the slowest job, not the sum of them, bounds the wait.

Silence and errors are kept apart. A job that was published but whose minions
did not answer in time is a fleet state: those minions are simply missing from
its returns. A job that could not be published at all (the master is not
running or not answering, it refused the request, or it assigned no job id)
or whose returns could not be collected is an error: :func:`run_jobs` raises
:class:`~salt_kiosk.errors.KioskPublishError` naming each such job (function,
targets) and Salt's reason, after every job of the call has finished; the
returns of the jobs that were published are in the error's ``results``.
"""

import concurrent.futures
import logging

import salt.client

from salt_kiosk.errors import KioskPublishError

log = logging.getLogger(__name__)

#: How Salt's client fills in a targeted minion that did not answer.
NO_RETURN = "Minion did not return"

#: How many targets an error message names before it counts the rest.
SHOWN_TARGETS = 10

_UNSET = object()


class _Client(salt.client.LocalClient):
    """A ``LocalClient`` that keeps what the master answered to its first publish."""

    def __init__(self, *args, **kwargs):
        self.first_pub = _UNSET
        super().__init__(*args, **kwargs)

    def pub(self, *args, **kwargs):  # pylint: disable=arguments-differ
        data = super().pub(*args, **kwargs)
        if self.first_pub is _UNSET:
            self.first_pub = data
        return data


def _targets(tgt):
    if isinstance(tgt, (list, tuple, set)):
        names = [str(name) for name in tgt]
        shown = ", ".join(names[:SHOWN_TARGETS])
        if len(names) > SHOWN_TARGETS:
            shown += f" and {len(names) - SHOWN_TARGETS} more"
        return shown or "no minion"
    return str(tgt)


def _reason(exc):
    text = str(exc).strip()
    return text or exc.__class__.__name__


def _unpublished(pub_data):
    """Why ``pub_data`` (the master's answer to a publish) carries no job, or None when it does."""
    if not isinstance(pub_data, dict) or "jid" not in pub_data:
        return f"the master assigned no job id (it answered {pub_data!r})"
    if pub_data["jid"] == "0":
        return "Failed to connect to the Master, is the Salt Master running?"
    if not pub_data["jid"] and pub_data.get("minions"):
        return f"the master assigned no job id (it answered {pub_data!r})"
    # A jid, or (on a master without order_masters) no jid because no minion
    # matched the target: nothing was sent because no targeted minion is known.
    return None


def _run_one(opts, key, job, timeout):
    doing = f"{job['fun']} to {_targets(job['tgt'])}"
    client = None
    try:
        client = _Client(mopts=opts)
        returns = client.cmd(
            job["tgt"],
            job["fun"],
            arg=job.get("arg", []),
            kwarg=job.get("kwarg") or None,
            tgt_type=job.get("tgt_type", "list"),
            timeout=job.get("timeout", timeout),
            jid=job.get("jid") or "",
            full_return=True,
        )
    except Exception as exc:  # pylint: disable=broad-except
        first = getattr(client, "first_pub", _UNSET)
        if isinstance(first, dict) and first.get("jid"):
            message = f"job {first['jid']} ({doing}) was published but collecting its returns failed: {_reason(exc)}"
        else:
            message = f"publishing {doing} failed: {_reason(exc)}"
        raise KioskPublishError({key: message}) from exc
    finally:
        if client is not None:
            client.destroy()
    if not returns:
        why = _unpublished(client.first_pub)
        if why is not None:
            raise KioskPublishError({key: f"publishing {doing} failed: {why}"})
    result = {}
    for minion, data in (returns or {}).items():
        # A minion that did not answer shows up as False, {"failed": True} or a
        # "Minion did not return" text, depending on how Salt noticed; only a
        # real return has a "ret" key.
        if not isinstance(data, dict) or "ret" not in data:
            continue
        if isinstance(data["ret"], str) and data["ret"].startswith(NO_RETURN):
            continue
        result[minion] = {"ret": data["ret"], "retcode": data.get("retcode", 0)}
    return result


def run_jobs(opts, jobs, timeout):
    """
    Publish ``jobs`` (``{key: {"tgt": [minion ids], "fun": ..., "arg": [...],
    "kwarg": {...}, "timeout": optional, "jid": optional}}``) and wait at most
    ``timeout`` seconds (or the job's own) for each. A job with a ``jid`` is
    published under that job id (the engine records it before publishing, so
    that after a crash it can tell a job that went out from one that did not). Return
    ``{key: {minion: {"ret": ..., "retcode": ...}}}`` holding the minions that
    answered; a minion missing from its job's dict did not answer in time.

    Raises :class:`~salt_kiosk.errors.KioskPublishError` when any job could not
    be published or its returns could not be collected (see the module
    documentation); its ``failures`` names those jobs by key and its
    ``results`` holds the returns of the others.
    """
    if not jobs:
        return {}
    results, failures = {}, {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(jobs), 16)) as pool:
        futures = {pool.submit(_run_one, opts, key, job, timeout): key for key, job in jobs.items()}
        for future in concurrent.futures.as_completed(futures):
            key = futures[future]
            try:
                results[key] = future.result()
            except KioskPublishError as exc:
                log.error("%s", exc)
                failures.update(exc.failures)
    if failures:
        raise KioskPublishError(failures, results)
    return results


def failed(answer):
    """True when a minion's answer is an error (non-zero retcode or an error string)."""
    if answer.get("retcode", 0) not in (0, None):
        return True
    ret = answer.get("ret")
    return isinstance(ret, str) and (
        ret.startswith("ERROR")
        or "is not available" in ret
        or "Passed invalid arguments" in ret
        or ret.startswith("The minion function caused an exception")
    )
