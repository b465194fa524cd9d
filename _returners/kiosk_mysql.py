"""
Job returns, loads and events into the central kiosk database, from every
syndic master, without losing anything when the database blinks.

Use it as any of:

.. code-block:: yaml

    master_job_cache: kiosk_mysql      # syndic masters and the master of masters
    event_return: kiosk_mysql          # events (batched, one statement per batch)
    ext_job_cache: kiosk_mysql         # minions write their returns themselves
    # or per job: salt '*' test.ping --return kiosk_mysql

Configuration (master or minion config):

``kiosk_mysql:db``
    Database URL or mapping, as ``kiosk:db`` (which it defaults to), e.g.
    ``mysql+pymysql://salt:SECRET@db.example/kiosk`` or ``{host, user,
    password_file, database}``.

``kiosk_mysql:schema_owner``
    Whether this master may create and upgrade the kiosk schema and delete
    old results (default: ``kiosk:schema_owner``, which defaults to true on
    the master of masters only). Relay masters never migrate or delete: their
    database account needs only SELECT, INSERT and UPDATE on the result
    tables. While the schema is older than this salt-kiosk needs, a relay
    spools what it receives and logs an ERROR saying to run the migration on
    the master of masters.

``kiosk_mysql:master_id``
    Recorded with every row (default: ``master_id``, then ``id``).

``kiosk_mysql:spool_dir`` / ``kiosk_mysql:spool_max`` / ``kiosk_mysql:spool_max_bytes``
    Durable spool used while the database is unreachable (default
    ``<cachedir>/kiosk_mysql_spool``, at most 100,000 items and 268435456
    bytes, i.e. 256 MiB). Items are replayed in order before the next
    successful write. An item the database itself refuses (too long for its
    column, over ``max_allowed_packet``) is kept in the spool directory as
    ``<name>.json.bad`` for inspection and counts against both bounds until
    an operator deletes it. An item that would exceed either bound is dropped
    (a refused one is not kept) with an ERROR log line naming the spool and
    the bound. Both must be integers >= 1.

    A write or a read (``get_load``, ``get_jid``, ...) whose pooled
    connection was lost to a database restart is tried once more on fresh
    connections before the database counts as unreachable, so a long-lived
    process (a syndic, the engine's client) does not take a restart that is
    over for an outage.

Alternative profiles and per-job options, as for Salt's own returners
(``salt.returners.get_returner_options``): ``--return_config NAME`` reads each
key from ``NAME.kiosk_mysql`` (a mapping, or flat ``NAME.kiosk_mysql.db`` keys)
and falls back to ``kiosk_mysql`` for what the profile leaves out (a profile
value that is false or 0 falls back too: Salt's rule); ``--return_kwargs``
overrides single keys. Only ``db``, ``master_id``, ``spool_dir``, ``spool_max``,
``spool_max_bytes``, ``retry_after`` and ``schema_owner`` are accepted (another
key is refused and nothing is written). A database other than the default one
gets its own spool (``<cachedir>/kiosk_mysql_spool-<hash>``) unless
``spool_dir`` is given. ``--return_kwargs`` are never stored with the return.

.. code-block:: yaml

    alternative.kiosk_mysql:
      db: mysql+pymysql://salt:SECRET@db2.example/kiosk

.. code-block:: bash

    salt 'kiosk-*' test.ping --return kiosk_mysql --return_config alternative
    salt 'kiosk-*' test.ping --return kiosk_mysql --return_kwargs '{"master_id": "lab"}'

They are honoured where the return is made, on the minion that ran the job
(``salt ... --return``, ``schedule`` ``return_config``/``return_kwargs``). A
master ignores them in the returns its minions send (``master_job_cache``): a
minion's return is data, and must not choose the master's database or spool.

A return with jid ``req`` (a standalone job: ``startup_states`` with
``ext_job_cache``, a scheduled job with a returner) gets a fresh jid from
``prep_jid`` and a job load (targeted at the minion), as Salt's own returners do.

Tables (created by the kiosk schema): ``kiosk_jobs`` (one row per jid),
``kiosk_job_minions``, ``kiosk_returns`` (one row per jid and minion),
``kiosk_events``. The same jid written by several masters is an upsert, not an
error.

Events fired: none.
"""

import logging
import time

try:
    import salt.returners
    import salt.utils.jid

    from salt_kiosk.errors import KioskInputError, KioskSchemaError
    from salt_kiosk.jobs import cache, writer

    HAS_LIB = True
except ImportError as _exc:  # the library travels with pip, not with saltutil.sync_all
    HAS_LIB = False
    _IMPORT_ERROR = str(_exc)

log = logging.getLogger(__name__)

__virtualname__ = "kiosk_mysql"


def __virtual__():
    if not HAS_LIB:
        return (
            False,
            f"the salt_kiosk library is not importable ({_IMPORT_ERROR}); install it with pip install salt-kiosk",
        )
    return __virtualname__


def _opts_option(key, default=""):
    """``config.option`` over ``__opts__`` alone, for a returner loaded without execution modules."""
    value = __opts__.get(key)
    return default if value is None else value


def _options(ret=None):
    """
    This call's options, gathered as Salt's returners gather theirs; the
    library validates them (``writer.settings``).
    """
    call = {}
    if ret and __opts__.get("__role") == "minion":
        # Only where the return is made: on a master, ret is a minion's data.
        call = {key: ret[key] for key in ("ret_config", "ret_kwargs") if ret.get(key)}
        if not isinstance(call.get("ret_kwargs", {}), dict):
            raise KioskInputError(
                f"kiosk_mysql: --return_kwargs {str(call['ret_kwargs'])[:64]!r} is not a mapping "
                f"(accepted: a mapping of {', '.join(writer.OPTIONS)})"
            )
    funcs = __salt__ if "config.option" in __salt__ else {"config.option": _opts_option}
    return salt.returners.get_returner_options(
        __virtualname__, call, {key: key for key in writer.OPTIONS}, __salt__=funcs, __opts__=__opts__
    )


#: A master's settings are its own config: gathered once per process and
#: looked at again after this many seconds (a minion's return may carry
#: --return_config / --return_kwargs: gathered per call there).
SETTINGS_TTL = 10.0
_MASTER_RESULTS = {"at": None, "results": None}


def _results(ret=None):
    if __opts__.get("__role") == "minion":
        return writer.JobResults.get(__opts__, _options(ret))
    now = time.monotonic()
    if _MASTER_RESULTS["at"] is None or now - _MASTER_RESULTS["at"] > SETTINGS_TTL:
        _MASTER_RESULTS["results"] = writer.JobResults.get(__opts__, _options())
        _MASTER_RESULTS["at"] = now
    return _MASTER_RESULTS["results"]


def _read(func, empty, *args):
    """
    Reads fail fast while the database is down (the syndic asks for a job's
    load on its event loop; a connect timeout there would stall it).
    """
    options = _options()
    results = writer.JobResults.get(__opts__, options)
    if results.down():
        return empty
    try:
        return func(__opts__, *args, options=options)
    except writer.UNREACHABLE as exc:
        results.mark_down(exc)
        return empty


def returner(ret):
    """
    Store one minion's return (spooled when the database is unreachable).

    A return with jid ``req`` (a standalone job) gets a fresh jid from
    :func:`prep_jid` and its job load is stored too, as Salt's own returners
    do. ``--return_config`` / ``--return_kwargs`` choose the database on the
    minion that ran the job (see the module documentation).

    CLI Example:

    .. code-block:: bash

        salt '*' test.ping --return kiosk_mysql
        salt '*' test.ping --return kiosk_mysql --return_config alternative
        salt '*' test.ping --return kiosk_mysql --return_kwargs '{"master_id": "lab"}'
    """
    results = _results(ret)
    if ret["jid"] == "req":
        ret["jid"] = prep_jid(nocache=ret.get("nocache", False))
        results.write("load", results.standalone_load(ret))
    results.write("return", results.return_row(ret))


def save_load(jid, load, minions=None):
    """
    Store a job's load and target minions (an upsert: several masters may send the same jid).

    CLI Example:

    .. code-block:: bash

        salt-run jobs.list_jobs   # with master_job_cache: kiosk_mysql
    """
    results = _results()
    results.write("load", results.load_item(jid, load, minions))


def save_minions(jid, minions, syndic_id=None):  # pylint: disable=unused-argument
    """
    Record the minions a job was published to.

    CLI Example:

    .. code-block:: bash

        salt-run jobs.lookup_jid 20261125093000123456
    """
    results = _results()
    results.write("minions", results.minion_rows(jid, minions))


def get_load(jid):
    """
    Return the load of a job.

    CLI Example:

    .. code-block:: bash

        salt-run jobs.print_job 20261125093000123456
    """
    return _read(cache.get_load, {}, jid)


def get_jid(jid):
    """
    Return ``{minion: {"return": ...}}`` for a job.

    CLI Example:

    .. code-block:: bash

        salt-run jobs.lookup_jid 20261125093000123456
    """
    return _read(cache.get_jid, {}, jid)


def get_fun(fun):
    """
    Return ``{minion: fun}`` for the minions whose latest return ran ``fun``.

    CLI Example:

    .. code-block:: bash

        salt-call ret.get_fun kiosk_mysql test.ping
    """
    return _read(cache.get_fun, {}, fun)


def get_jids():
    """
    Return every recorded job as ``{jid: formatted job}``.

    CLI Example:

    .. code-block:: bash

        salt-run jobs.list_jobs
    """
    return {jid: salt.utils.jid.format_jid_instance(jid, load) for jid, load in _read(cache.get_jids, {}).items()}


def get_jids_filter(count, filter_find_job=True):
    """
    Return the newest ``count`` jobs, newest first.

    CLI Example:

    .. code-block:: bash

        salt-run jobs.last_run
    """
    return [
        salt.utils.jid.format_jid_instance_ext(item["jid"], item["load"])
        for item in _read(cache.get_jids_filter, [], count, filter_find_job)
    ]


def get_minions():
    """
    Return every minion id that has a stored return.

    CLI Example:

    .. code-block:: bash

        salt-call ret.get_minions kiosk_mysql
    """
    return _read(cache.get_minions, [])


def prep_jid(nocache=False, passed_jid=None):  # pylint: disable=unused-argument
    """
    Return the jid to use (the one passed, or a new one).

    CLI Example:

    .. code-block:: bash

        salt '*' test.ping   # the master calls it for every job
    """
    return passed_jid if passed_jid is not None else salt.utils.jid.gen_jid(__opts__)


def event_return(events):
    """
    Store a batch of events with one statement.

    CLI Example:

    .. code-block:: bash

        # master config: event_return: kiosk_mysql
        salt-run state.event pretty=True
    """
    results = _results()
    rows = results.event_rows(events)
    if rows:
        results.write("events", rows)


def clean_old_jobs():
    """
    Delete jobs, returns and events older than ``keep_jobs_seconds``. The
    master calls it from its maintenance loop (every ``loop_interval``), so it
    also replays the spool: items spooled while the database was down reach it
    within a minute of its return even when no new job arrives.

    CLI Example:

    .. code-block:: bash

        # the master calls it from its maintenance loop
        salt-run jobs.list_jobs
    """
    options = _options()
    results = writer.JobResults.get(__opts__, options)
    if results.down():
        return
    try:
        results.flush()
        cache.clean_old_jobs(__opts__, options)
    except writer.UNREACHABLE as exc:
        log.debug("kiosk_mysql: database still unreachable (%s); %d item(s) spooled", exc, len(results.spool))
    except KioskSchemaError as exc:
        # Only the master of masters migrates; until it has, items stay spooled.
        log.error("kiosk_mysql: %s; %d item(s) spooled", exc, len(results.spool))
