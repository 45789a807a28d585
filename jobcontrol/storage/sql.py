"""SQL shared by the SQLite and PostgreSQL backends (huey's ``BaseSqlStorage`` is the shape).

Each operation's SQL is written once, by name, in ``queries/common.sql`` (``?`` placeholders,
SQL both dialects accept); ``queries/postgresql.sql`` holds PostgreSQL's differences under
the same names (rows locked ``FOR UPDATE``) and its own queries (see
:mod:`jobcontrol.storage.queries`). What else differs is small and named on
:class:`SqlStorage` (its core, :mod:`~jobcontrol.storage.sql_core`), each with the SQLite
answer as the default where there is one:

===========================  ================================  ==============================
hook                         SQLite                            PostgreSQL (psycopg2)
===========================  ================================  ==============================
``placeholder``              ``?``                             ``%s``
``id_list_sql``              ``group_concat(b.id)``            ``string_agg(b.id::text, ',')``
``schema_table_ddl``         ``applied TEXT``                  ``applied timestamptz``
``_begin_write``             ``BEGIN IMMEDIATE``               ``BEGIN``
``_commit``, ``_rollback``   the connection's methods          ``COMMIT``, ``ROLLBACK``
``_lock_job``                (none, as above)                  ``pg_advisory_xact_lock``
``_lock_schema``             (none, as above)                  ``pg_advisory_xact_lock``
``_notify_logs``             (none: readers poll)              ``pg_notify`` (LISTEN wakes)
``_insert_id``               ``cursor.lastrowid``              ``RETURNING id``
``_insert_many``             ``executemany``                   ``execute_values``
``_insert_logs``             ``_insert_many``                  ``COPY``
``_run_script``              statement by statement            the whole file at once
``_table_exists``            ``sqlite_master``                 ``to_regclass``
``_time_param``              ISO 8601 text                     the datetime (``timestamptz``)
``_operation``               run once                          retried after a lost connection
===========================  ================================  ==============================

Migrations are ``migrations/<dialect>/NNNN_name.sql`` (:mod:`jobcontrol.storage.schema`),
applied in order in one transaction, each recorded as a row of ``jobcontrol_schema``.

The operations are written once, by concern: :mod:`~jobcontrol.storage.sql_builds`,
:mod:`~jobcontrol.storage.sql_queue` (builds queued for workers, on the builds),
:mod:`~jobcontrol.storage.sql_logs` (with progress and housekeeping) and
:mod:`~jobcontrol.storage.sql_settings` (schedules, settings, web sessions) and
:mod:`~jobcontrol.storage.sql_pauses` (pauses of jobs) and
:mod:`~jobcontrol.storage.sql_search` (the Builds page's filters and totals),
:mod:`~jobcontrol.storage.sql_runs` (runs), each a class on
:class:`~jobcontrol.storage.sql_core.SqlCore`; :class:`SqlStorage` is them all together.
"""

from __future__ import annotations

from jobcontrol.storage.queries import BUILD_COLUMNS
from jobcontrol.storage.schema import Migration, load_migrations
from jobcontrol.storage.sql_core import _UNFINISHED, _Claim, retried
from jobcontrol.storage.sql_logs import SqlLogs
from jobcontrol.storage.sql_pauses import SqlPauses
from jobcontrol.storage.sql_queue import SqlQueue
from jobcontrol.storage.sql_runs import SqlRuns
from jobcontrol.storage.sql_search import SqlSearch
from jobcontrol.storage.sql_settings import SqlSettings
from jobcontrol.storage.sql_workers import SqlWorkers

__all__ = [
    "BUILD_COLUMNS",
    "_UNFINISHED",
    "Migration",
    "SqlStorage",
    "_Claim",
    "load_migrations",
    "retried",
]


class SqlStorage(SqlQueue, SqlLogs, SqlSettings, SqlPauses, SqlSearch, SqlRuns, SqlWorkers):
    """A :class:`~jobcontrol.storage.base.Storage` on a DB-API connection; subclasses
    supply the dialect hooks (see :class:`~jobcontrol.storage.sql_core.SqlCore`).

    One connection per object, opened on first use, guarded by a lock so threads can share
    the object. The schema is migrated forward on first use.
    """
