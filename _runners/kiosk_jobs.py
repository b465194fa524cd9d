"""
Unit-split batch jobs and job results from the central database.

``run`` cuts a job over many kiosks into units of ``unit`` minions, runs at most
``concurrency`` units at a time, each with a hard ``timeout``, and records per
minion ``success``, ``failed``, ``timeout`` (targeted, no return in time) or
``absent`` (no master knows it). One dead kiosk costs its unit at most
``timeout`` seconds and never holds up the others. ``status`` queries by task,
minion ids or IP; ``progress`` shows any job recorded by the ``kiosk_mysql``
returner (configure it on every syndic master as ``master_job_cache``).

Who may run what: ``run`` publishes the function its caller names, so it
checks that the caller could publish that function, with those arguments, to
every targeted minion under Salt's own ACLs (``external_auth`` for salt-api
and eauth users, ``publisher_acl`` for local users, ``publisher_acl_blacklist``
for all; see :mod:`salt_kiosk.acl`). Root on the master's command line keeps
every right. Minion ids outside the inventory are refused unless
``allow_unknown=True``.

Configuration (master config): ``kiosk:db`` (tasks, inventory),
``kiosk_mysql`` (see the returner) for ``progress``, ``external_auth`` /
``publisher_acl`` / ``publisher_acl_blacklist`` (Salt's own).

Events fired: none.
"""

try:
    from salt_kiosk import acl
    from salt_kiosk.db import store
    from salt_kiosk.errors import refusals_exit_nonzero
    from salt_kiosk.jobs import cache as kcache
    from salt_kiosk.jobs import tasks as ktasks

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

    def refusals_exit_nonzero(func):  # __virtual__ refuses the module; the name must still exist
        return func


__virtualname__ = "kiosk_jobs"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


def _user():
    return globals().get("__user__") or "UNKNOWN"


@refusals_exit_nonzero
def run(tgt, fun, arg=None, unit=30, timeout=60, concurrency=4, wait=False, allow_unknown=False):
    """
    Run ``fun`` on the kiosks of ``tgt`` in units.

    tgt
        Inventory target (``*``, ``campus:<name>``, ``group:<name>``,
        ``id:<glob>``) or a list / comma-separated string of minion ids.

    fun, arg
        The Salt function and its positional arguments (a list).

    unit
        Minions per unit (>= 1, default 30).

    timeout
        Seconds each unit may take (>= 1, default 60).

    concurrency
        Units in flight (default 4).

    wait
        False (default): return ``{"task": id}`` at once and run in a background
        process; True: run here and return the task's status.

    allow_unknown
        False (default): minion ids that are not kiosks of the inventory are
        refused. True: list targets may name any minion (still subject to
        the caller's publish rights).

    The caller must hold the right to publish ``fun`` with ``arg`` to every
    targeted minion (``external_auth`` / ``publisher_acl``); otherwise the
    call is refused before anything is recorded or published.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_jobs.run '*' cmd.run '["systemctl restart kiosk-ui"]' unit=30 timeout=120
        salt-run kiosk_jobs.run campus:east test.ping wait=True
        salt-run kiosk_jobs.run '["relay-e1", "relay-e2"]' test.ping allow_unknown=True wait=True
    """
    kstore = store.open_store(__opts__)
    user = _user()

    def authorize(fun, arg, minions, known):
        acl.check_publish(__opts__, user, fun, arg, minions, universe=known)

    task_id = ktasks.create(
        kstore,
        tgt,
        fun,
        arg=arg,
        unit=unit,
        timeout=timeout,
        concurrency=concurrency,
        allow_unknown=bool(allow_unknown),
        authorize=authorize,
    )
    if wait:
        return ktasks.execute(__opts__, kstore, task_id)
    log_path = ktasks.start_background(__opts__, task_id)
    return {"task": task_id, "state": "started", "log": log_path}


@refusals_exit_nonzero
def status(task=None, minions=None, ip=None):
    """
    Progress and results: one task (counts, success rate, per-minion result),
    or the latest results of given minions or IPs across tasks, or the recent
    tasks when called without arguments.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_jobs.status
        salt-run kiosk_jobs.status 6f1c0e...
        salt-run kiosk_jobs.status minions='["kiosk-e1", "kiosk-e2"]'
        salt-run kiosk_jobs.status ip=10.1.0.11
    """
    return ktasks.status(store.open_store(__opts__), task=task, minions=minions, ip=ip)


@refusals_exit_nonzero
def progress(jid):
    """
    Progress of any job from the central job store: minions expected (as the
    masters published it), returned, succeeded, failed, still waiting, and the
    masters that wrote the returns.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_jobs.progress 20261125093000123456
    """
    return ktasks.progress(__opts__, jid)


@refusals_exit_nonzero
def recent(minion, limit=20):
    """
    The newest ``limit`` (1-500, default 20) jobs a minion returned, newest
    first, from the central job store: jid, function, success, retcode, when
    and the master that wrote the return. ``salt-run jobs.lookup_jid <jid>``
    shows a return in full.

    CLI Example:

    .. code-block:: bash

        salt-run kiosk_jobs.recent kiosk-e1
        salt-run kiosk_jobs.recent kiosk-e1 limit=100
    """
    return kcache.recent(__opts__, minion, limit=limit)
