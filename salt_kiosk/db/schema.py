"""
Every table of the kiosk database, in one SQLAlchemy ``MetaData``.

This module depends on SQLAlchemy alone. The tables are created and changed
only by the versioned steps of :mod:`salt_kiosk.db.migrations`; the rest of the
library reads and writes them through SQLAlchemy Core.

All tables carry a ``kiosk_`` prefix so that they can share a database with
other returners' tables. Keys compare exactly (E01 and e01 are two kiosks) on
MySQL/MariaDB as on SQLite.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect

metadata = sa.MetaData()

#: Table options on MySQL/MariaDB: 4-byte UTF-8 and binary (exact) comparison.
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

#: Text that may exceed 64 KiB on MySQL (job loads and returns, job documents).
BIG_TEXT = sa.Text().with_variant(mysql_dialect.LONGTEXT(), "mysql", "mariadb")

# -- schema version, campuses, kiosks, power, rules, sweeps, releases, engine


# Keys compare exactly (E01 and e01 are two kiosks) on MySQL as on SQLite.
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

schema_table = sa.Table(
    "kiosk_schema",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(255), nullable=False),
    sa.Column("applied_at", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)

campuses = sa.Table(
    "kiosk_campuses",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("broadcast", sa.String(45), nullable=True),
    sa.Column("relays", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)

kiosks = sa.Table(
    "kiosk_kiosks",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("minion_id", sa.String(255), nullable=False, unique=True),
    sa.Column("campus", sa.String(64), nullable=False, index=True),
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("ip", sa.String(45), nullable=True),
    sa.Column("mac", sa.String(17), nullable=True),
    sa.Column("vnc_port", sa.Integer, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)


power_events = sa.Table(
    "kiosk_power_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("username", sa.String(128), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("rule", sa.String(128), nullable=True),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("ok_count", sa.Integer, nullable=False),
    sa.Column("failed_count", sa.Integer, nullable=False),
    **MYSQL_TABLE,
)

power_event_kiosks = sa.Table(
    "kiosk_power_event_kiosks",
    metadata,
    sa.Column("event_id", sa.Integer, sa.ForeignKey("kiosk_power_events.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("campus", sa.String(64), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("acked", sa.JSON, nullable=False),
    sa.Column("silent", sa.JSON, nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    **MYSQL_TABLE,
)


meta = sa.Table(
    "kiosk_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=True),
    **MYSQL_TABLE,
)

rules = sa.Table(
    "kiosk_rules",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("state", sa.String(3), nullable=False),
    sa.Column("days", sa.JSON, nullable=True),
    sa.Column("dates", sa.JSON, nullable=True),
    sa.Column("start_min", sa.Integer, nullable=False),
    sa.Column("end_min", sa.Integer, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=True),
    sa.Column("valid_until", sa.Date, nullable=True),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_revision", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)

schedule_runs = sa.Table(
    "kiosk_schedule_runs",
    metadata,
    sa.Column("at", sa.DateTime, primary_key=True),
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("state", sa.String(3), nullable=False),
    sa.Column("rule", sa.String(128), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("event_id", sa.Integer, nullable=True),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    # Who holds the claim (the engine's master) and the Salt job id its
    # command was published under: enough to settle it after a crash
    # (schema migration 12; see salt_kiosk.power.engine).
    sa.Column("holder", sa.String(255), nullable=True),
    sa.Column("jid", sa.String(32), nullable=True),
    sa.Index("ix_kiosk_schedule_runs_status", "status"),
    **MYSQL_TABLE,
)


sweep_results = sa.Table(
    "kiosk_sweep_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Integer, nullable=True, index=True),
    sa.Column("sweep", sa.Integer, nullable=False),
    sa.Column("minion_id", sa.String(255), nullable=False, index=True),
    sa.Column("expected", sa.String(3), nullable=False),
    sa.Column("observed", sa.String(8), nullable=False),
    sa.Column("network", sa.String(8), nullable=False),
    sa.Column("salt", sa.String(8), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("final", sa.Boolean, nullable=False),
    sa.Column("checked_at", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)


releases = sa.Table(
    "kiosk_releases",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("md5", sa.String(32), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("rollback_of", sa.String(64), nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    # The publish-time health settings {"cmd", "url", "timeout"} (any of them), or null.
    sa.Column("health", sa.JSON, nullable=True),
    **MYSQL_TABLE,
)

release_stages = sa.Table(
    "kiosk_release_stages",
    metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("relay", sa.String(255), primary_key=True),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("staged_at", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)

release_kiosks = sa.Table(
    "kiosk_release_kiosks",
    metadata,
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("version", sa.String(64), nullable=True),
    sa.Column("md5", sa.String(32), nullable=True),
    sa.Column("attempted", sa.String(64), nullable=True),
    sa.Column("ok", sa.Boolean, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("seen_at", sa.DateTime, nullable=False),
    # The last attempt failed its health gate and the kiosk went back to ``version``.
    sa.Column("rolled_back", sa.Boolean, nullable=True),
    **MYSQL_TABLE,
)

# The schedule engine's APScheduler jobs, one JSON document of plain data per
# job (see salt_kiosk.power.engine.PlainJobStore); never a pickle.
scheduler_jobs = sa.Table(
    "kiosk_scheduler_jobs",
    metadata,
    sa.Column("id", sa.String(191), primary_key=True),
    sa.Column("next_run_time", sa.Double, nullable=True, index=True),
    sa.Column("job", BIG_TEXT, nullable=False),
    **MYSQL_TABLE,
)


# The schedule engine's leadership: one row per engine key. The master of
# masters holding an unexpired lease executes; the others stand by.
engine_leases = sa.Table(
    "kiosk_engine_leases",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    sa.Column("renewed_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)

# Release rollouts in waves (salt_kiosk.releases.waves): one row per rollout,
# one per kiosk it concerns.
rollouts = sa.Table(
    "kiosk_rollouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.String(64), nullable=False, index=True),
    sa.Column("target", sa.String(255), nullable=False),
    # The waves as given (e.g. [1, "10%", "100%"]) and as kiosk counts.
    sa.Column("waves_spec", sa.JSON, nullable=False),
    sa.Column("wave_sizes", sa.JSON, nullable=False),
    sa.Column("max_failed", sa.Float, nullable=False),
    sa.Column("per_relay", sa.Integer, nullable=True),
    # running, halted, aborted, done
    sa.Column("status", sa.String(16), nullable=False, index=True),
    # Index of the wave in progress (or that halted); len(wave_sizes) when done.
    sa.Column("wave", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("username", sa.String(128), nullable=False),
    # The master driving it and when it last made progress (a stale running
    # rollout was interrupted: resume takes it over).
    sa.Column("holder", sa.String(255), nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)

rollout_kiosks = sa.Table(
    "kiosk_rollout_kiosks",
    metadata,
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("kiosk_rollouts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("wave", sa.Integer, nullable=False),
    sa.Column("campus", sa.String(64), nullable=False),
    # pending, sending, installed, unchanged, failed, rolled_back, absent, reverted
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    # The release the kiosk ran before (what abort with rollback brings back).
    sa.Column("previous", sa.String(64), nullable=True),
    # The relay address it was told to fetch from.
    sa.Column("relay", sa.String(255), nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)


# -- job results written by the kiosk_mysql returner (salt_kiosk.jobs)

jobs = sa.Table(
    "kiosk_jobs",
    metadata,
    sa.Column("jid", sa.String(32), primary_key=True),
    sa.Column("fun", sa.String(255), nullable=True, index=True),
    sa.Column("tgt", sa.Text, nullable=True),
    sa.Column("load", BIG_TEXT, nullable=False),
    sa.Column("master_id", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    **MYSQL_TABLE,
)

job_minions = sa.Table(
    "kiosk_job_minions",
    metadata,
    sa.Column("jid", sa.String(32), primary_key=True),
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("master_id", sa.String(255), nullable=False),
    **MYSQL_TABLE,
)

returns = sa.Table(
    "kiosk_returns",
    metadata,
    sa.Column("jid", sa.String(32), primary_key=True),
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("fun", sa.String(255), nullable=True, index=True),
    sa.Column("success", sa.Boolean, nullable=True),
    sa.Column("retcode", sa.Integer, nullable=True),
    sa.Column("ret", BIG_TEXT, nullable=False),
    sa.Column("master_id", sa.String(255), nullable=False),
    sa.Column("alter_time", sa.DateTime, nullable=False, index=True),
    sa.Index("ix_kiosk_returns_minion", "minion_id"),
    **MYSQL_TABLE,
)

#: Characters of an event's tag in the MySQL index on it.
EVENT_TAG_PREFIX = 32

events = sa.Table(
    "kiosk_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("uid", sa.String(36), nullable=False, unique=True),
    sa.Column("tag", sa.String(255), nullable=False),
    sa.Column("data", BIG_TEXT, nullable=False),
    sa.Column("master_id", sa.String(255), nullable=False),
    sa.Column("alter_time", sa.DateTime, nullable=False, index=True),
    # On MySQL the tag's first EVENT_TAG_PREFIX characters only: enough for the
    # prefixes that are looked up (salt/beacon/...), and the events of one job
    # (salt/job/<jid>/ret/...) then land side by side in the index instead of
    # all over it (events written 27% faster, bench/returner.py).
    sa.Index("ix_kiosk_events_tag", "tag", mysql_length={"tag": EVENT_TAG_PREFIX}),
    **MYSQL_TABLE,
)


# -- unit-split tasks (salt_kiosk.jobs.tasks)

tasks = sa.Table(
    "kiosk_tasks",
    metadata,
    sa.Column("task_id", sa.String(32), primary_key=True),
    sa.Column("tgt", sa.Text, nullable=False),
    sa.Column("fun", sa.String(255), nullable=False),
    sa.Column("arg", sa.Text, nullable=False),
    sa.Column("unit", sa.Integer, nullable=False),
    sa.Column("timeout", sa.Integer, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
    **MYSQL_TABLE,
)

task_results = sa.Table(
    "kiosk_task_results",
    metadata,
    sa.Column("task_id", sa.String(32), primary_key=True),
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("unit", sa.Integer, nullable=False),
    sa.Column("ip", sa.String(45), nullable=True, index=True),
    sa.Column("jid", sa.String(32), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("retcode", sa.Integer, nullable=True),
    sa.Column("ret", BIG_TEXT, nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_kiosk_task_results_minion", "minion_id"),
    **MYSQL_TABLE,
)


# -- assets collected from grains (salt_kiosk.assets)

assets = sa.Table(
    "kiosk_assets",
    metadata,
    sa.Column("minion_id", sa.String(255), primary_key=True),
    sa.Column("code", sa.String(64), nullable=True),
    sa.Column("role", sa.String(16), nullable=True),
    sa.Column("campus", sa.String(64), nullable=True),
    sa.Column("hostname", sa.String(255), nullable=True),
    sa.Column("ip", sa.String(45), nullable=True),
    sa.Column("mac", sa.String(17), nullable=True),
    sa.Column("release", sa.String(64), nullable=True),
    sa.Column("facts", sa.Text, nullable=False),
    sa.Column("first_seen", sa.DateTime, nullable=False),
    sa.Column("last_seen", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)

asset_history = sa.Table(
    "kiosk_asset_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("minion_id", sa.String(255), nullable=False, index=True),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("old", sa.Text, nullable=True),
    sa.Column("new", sa.Text, nullable=True),
    sa.Column("changed_at", sa.DateTime, nullable=False),
    **MYSQL_TABLE,
)
