"""
The ``kiosk_mysql`` returner against Salt's job-cache contract, loaded by
Salt's own loader:

- a return with jid ``req`` (startup states, a scheduled job with a returner)
  gets a fresh jid and a job load, as Salt's returners do (saltext-mysql
  ``returner()``, ``local_cache.returner()``);
- ``--return_config`` / ``--return_kwargs`` (``ret_config`` / ``ret_kwargs``
  in the return, read with ``salt.returners.get_returner_options``) choose the
  database on the minion that ran the job, and never on a master, where the
  return is a minion's data.

A masterless salt-minion booted twice with the returner as its
``ext_job_cache`` is in tests/functional/test_returner_contract.py.
"""

import pytest
import salt.config
import salt.loader
import salt.utils.jid
import sqlalchemy as sa

from salt_kiosk.errors import KioskInputError
from salt_kiosk.jobs import writer


def rows(url, table="kiosk_returns"):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY jid")).all()]
    except sa.exc.OperationalError:  # no schema: nothing was ever written there
        return []
    finally:
        engine.dispose()


@pytest.fixture
def dbs(tmp_path):
    """Two embedded databases: the default one and the ``alternative`` profile's."""
    yield {
        "default": f"sqlite:///{tmp_path / 'default.sqlite3'}",
        "alternative": f"sqlite:///{tmp_path / 'alt.sqlite3'}",
    }
    writer.JobResults.dispose_all()


@pytest.fixture
def loaded(tmp_path, dbs):
    """``loaded(role, with_config_module=True, **opts)`` -> the Salt-loaded kiosk_mysql functions."""

    def make(role="minion", with_config_module=True, **extra):
        if role == "minion":
            opts = salt.config.minion_config(str(tmp_path / "minion"))
            opts.update(id="kiosk-e1", grains={}, pillar={})
        else:
            opts = salt.config.master_config(str(tmp_path / "master"))
            opts.update(id="relay-e1", order_masters=False)
        opts.update(cachedir=str(tmp_path / "cache"), kiosk_mysql={"db": dbs["default"]})
        opts.update(extra)
        assert opts["__role"] == role
        # On a minion the returner's __salt__ holds config.option, which
        # get_returner_options then reads the profiles through.
        funcs = salt.loader.minion_mods(opts) if with_config_module else {}
        return salt.loader.returners(opts, funcs)

    return make


def ret(jid="req", minion="kiosk-e1", value=True, **extra):
    return dict(
        {
            "jid": jid,
            "id": minion,
            "fun": "state.sls",
            "fun_args": ["kiosk.release"],
            "return": value,
            "retcode": 0,
            "success": True,
        },
        **extra,
    )


def test_two_standalone_returns_get_distinct_jids_and_loads(loaded, dbs):
    returners = loaded("minion")
    first, second = ret(value="boot 1"), ret(value="boot 2")
    returners["kiosk_mysql.returner"](first)
    returners["kiosk_mysql.returner"](second)
    stored = rows(dbs["default"])
    assert [r["minion_id"] for r in stored] == ["kiosk-e1", "kiosk-e1"]
    jids = [r["jid"] for r in stored]
    assert len(set(jids)) == 2 and "req" not in jids and all(salt.utils.jid.is_jid(j) for j in jids)
    assert sorted(jids) == sorted([first["jid"], second["jid"]])  # the caller's ret carries the new jid, as in Salt
    # Each standalone job has its load, targeted at the minion, as Salt's master stores it.
    assert sorted(r["jid"] for r in rows(dbs["default"], "kiosk_jobs")) == sorted(jids)
    load = returners["kiosk_mysql.get_load"](first["jid"])
    assert load["fun"] == "state.sls" and load["arg"] == ["kiosk.release"] and load["tgt"] == "kiosk-e1"
    assert load["tgt_type"] == "glob" and load["Minions"] == ["kiosk-e1"] and "return" not in load
    assert returners["kiosk_mysql.get_jid"](second["jid"])["kiosk-e1"]["return"] == "boot 2"


def test_a_real_jid_is_kept(loaded, dbs):
    returners = loaded("minion")
    returners["kiosk_mysql.returner"](ret(jid="20261125093000123456"))
    assert [r["jid"] for r in rows(dbs["default"])] == ["20261125093000123456"]
    assert rows(dbs["default"], "kiosk_jobs") == []  # the master stores the load of a published job


@pytest.mark.parametrize("profile", ["mapping", "flat"])
@pytest.mark.parametrize("with_config_module", [True, False], ids=["config.option", "opts"])
def test_return_config_writes_to_the_profile_database(loaded, dbs, profile, with_config_module):
    extra = (
        {"alternative.kiosk_mysql": {"db": dbs["alternative"]}}
        if profile == "mapping"
        else {"alternative.kiosk_mysql.db": dbs["alternative"]}
    )
    returners = loaded("minion", with_config_module=with_config_module, **extra)
    returners["kiosk_mysql.returner"](ret(jid="20261125093000000001", ret_config="alternative"))
    returners["kiosk_mysql.returner"](ret(jid="20261125093000000002"))
    assert [r["jid"] for r in rows(dbs["alternative"])] == ["20261125093000000001"]
    assert [r["jid"] for r in rows(dbs["default"])] == ["20261125093000000002"]


def test_unknown_profile_falls_back_to_the_default_database(loaded, dbs):
    returners = loaded("minion")
    returners["kiosk_mysql.returner"](ret(jid="20261125093000000003", ret_config="nosuchprofile"))
    assert [r["jid"] for r in rows(dbs["default"])] == ["20261125093000000003"]


def test_return_kwargs_override_single_keys_and_are_not_stored(loaded, dbs, tmp_path):
    returners = loaded("minion", **{"alternative.kiosk_mysql": {"db": dbs["alternative"], "master_id": "alt"}})
    returners["kiosk_mysql.returner"](ret(jid="20261125093000000004", ret_kwargs={"db": dbs["alternative"]}))
    stored = rows(dbs["alternative"])
    assert [r["jid"] for r in stored] == ["20261125093000000004"] and rows(dbs["default"]) == []
    assert stored[0]["master_id"] == "kiosk-e1" and "ret_kwargs" not in stored[0]["ret"]
    # Profile first, then the kwargs over it.
    returners["kiosk_mysql.returner"](
        ret(jid="20261125093000000005", ret_config="alternative", ret_kwargs={"master_id": "lab"})
    )
    assert [(r["jid"], r["master_id"]) for r in rows(dbs["alternative"])][-1] == ("20261125093000000005", "lab")
    # A standalone job's load goes where its return goes.
    returners["kiosk_mysql.returner"](ret(ret_kwargs={"db": dbs["alternative"]}))
    assert len(rows(dbs["alternative"], "kiosk_jobs")) == 1 and rows(dbs["default"], "kiosk_jobs") == []
    # Another database never shares the default spool: a spool is replayed into its owner's database.
    default = writer.settings({"cachedir": str(tmp_path / "cache"), "kiosk_mysql": {"db": dbs["default"]}})
    other = writer.settings(
        {"cachedir": str(tmp_path / "cache"), "kiosk_mysql": {"db": dbs["default"]}}, {"db": dbs["alternative"]}
    )
    assert default["spool_dir"] == str(tmp_path / "cache" / "kiosk_mysql_spool")
    assert other["spool_dir"].startswith(default["spool_dir"] + "-") and other["url"] != default["url"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dbb": "sqlite://"}, r"unknown option\(s\) \['dbb'\]"),
        ("db=sqlite://", "--return_kwargs 'db=sqlite://' is not a mapping"),
        ({"spool_max": 0}, r"kiosk_mysql:spool_max '?0'? is out of range \(accepted: a number of items"),
    ],
)
def test_bad_return_kwargs_are_refused_and_nothing_is_written(loaded, dbs, kwargs, message):
    returners = loaded("minion")
    with pytest.raises(KioskInputError, match=message):
        returners["kiosk_mysql.returner"](ret(jid="20261125093000000006", ret_kwargs=kwargs))
    assert rows(dbs["default"]) == []


def test_a_master_ignores_the_options_in_a_minions_return(loaded, dbs):
    # master_job_cache: the return is what a (possibly hostile) kiosk sent.
    returners = loaded("master", **{"alternative.kiosk_mysql": {"db": dbs["alternative"]}})
    returners["kiosk_mysql.returner"](ret(jid="20261125093000000007", ret_config="alternative"))
    returners["kiosk_mysql.returner"](
        ret(jid="20261125093000000008", ret_kwargs={"db": dbs["alternative"], "spool_dir": "/etc/salt"})
    )
    assert [r["jid"] for r in rows(dbs["default"])] == ["20261125093000000007", "20261125093000000008"]
    assert rows(dbs["alternative"]) == []
