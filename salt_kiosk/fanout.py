"""
Publishing jobs from the master of masters through the syndic tree.

:func:`run_jobs` publishes several jobs at once (one per campus, typically) and
gathers their returns; each job runs in its own thread with its own
``LocalClient``, so the slowest job, not the sum of them, bounds the wait.
"""

import concurrent.futures
import logging

import salt.client

log = logging.getLogger(__name__)

#: How Salt's client fills in a targeted minion that did not answer.
NO_RETURN = "Minion did not return"


def _run_one(opts, job, timeout):
    client = salt.client.LocalClient(mopts=opts)
    try:
        returns = client.cmd(
            job["tgt"],
            job["fun"],
            arg=job.get("arg", []),
            kwarg=job.get("kwarg") or None,
            tgt_type=job.get("tgt_type", "list"),
            timeout=job.get("timeout", timeout),
            full_return=True,
        )
    finally:
        client.destroy()
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
    "kwarg": {...}, "timeout": optional}}``) and wait at most ``timeout`` seconds
    (or the job's own) for each. Return
    ``{key: {minion: {"ret": ..., "retcode": ...}}}`` holding the minions that
    answered; a minion missing from its job's dict did not answer in time.
    """
    if not jobs:
        return {}
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(jobs), 16)) as pool:
        futures = {pool.submit(_run_one, opts, job, timeout): key for key, job in jobs.items()}
        for future in concurrent.futures.as_completed(futures):
            key = futures[future]
            try:
                results[key] = future.result()
            except Exception as exc:  # pylint: disable=broad-except
                log.error("publishing %s for %s failed: %s", jobs[key]["fun"], key, exc)
                results[key] = {}
    return results


def failed(answer):
    """True when a minion's answer is an error (non-zero retcode or an error string)."""
    if answer.get("retcode", 0) not in (0, None):
        return True
    ret = answer.get("ret")
    return isinstance(ret, str) and (
        ret.startswith("ERROR") or "is not available" in ret or "Passed invalid arguments" in ret
        or ret.startswith("The minion function caused an exception")
    )
