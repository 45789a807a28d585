"""A build refused a slot while the end of a build of its job is still being written on
PostgreSQL (an outcome left to commit with its runner's next write): recording its wait
waits for that end to commit, so the claim tried next takes the slot it freed, and
neither side misses the other (see :mod:`jobcontrol.execution.dispatch`)."""

from __future__ import annotations

import threading
import time

import pytest

from jobcontrol.errors import JobAlreadyRunningError
from jobcontrol.models import Build, BuildState
from jobcontrol.storage.base import SLOT_WAIT

psycopg2 = pytest.importorskip("psycopg2", reason="the test extra installs psycopg2-binary")

from jobcontrol.storage.postgresql import PostgreSQLStorage  # noqa: E402
from tests.pgdb import query  # noqa: E402 (needs psycopg2)


def _lock_waits(url: str) -> int:
    return query(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                      "current_database() AND wait_event_type = 'Lock'")[0][0]


def test_a_wait_recorded_during_an_end_being_written_takes_the_slot_it_frees(
        pg_url: str) -> None:
    with PostgreSQLStorage(pg_url) as ender, PostgreSQLStorage(pg_url) as waiter:
        queued = waiter.enqueue_build("job", definition={}, definition_hash="h",
                                      dependency_builds={}, queue="q")
        assert queued is not None
        running = ender.claim_build("job", concurrency=1, definition={}, definition_hash="h",
                                    dependency_builds={}, host="h", pid=1)
        with pytest.raises(JobAlreadyRunningError):
            waiter.start_queued_build(queued.id, concurrency=1, host="h", pid=2)
        ender.pending_commit_delay = 3600  # committed below, by hand
        ender.finish_build_with_logs(running.id, BuildState.SUCCESS, logs=[],
                                     commit_later=True)
        assert ender.slot_waiters("job") == []  # it looked before the wait was recorded
        started: list[Build | None] = []

        def wait_then_claim() -> None:
            waiter.wait_for_slot(queued.id, f"{SLOT_WAIT}: job job was running")
            started.append(waiter.start_queued_build(queued.id, concurrency=1, host="h",
                                                     pid=2))

        thread = threading.Thread(target=wait_then_claim)
        thread.start()
        deadline = time.monotonic() + 30
        while _lock_waits(pg_url) == 0 and thread.is_alive():
            assert time.monotonic() < deadline, "the wait never waited for the end"
            time.sleep(0.01)
        assert not started  # held until the end commits
        ender.commit_pending()
        thread.join(timeout=30)
        [build] = started
        assert build is not None and build.state is BuildState.RUNNING


def test_the_slot_waiters_read_skips_a_backlog_of_queued_builds(pg_url: str) -> None:
    """Read at the end of every build a worker runs: behind 300 queued builds of the job
    that wait for no slot (a backlog), it reads the index of the waiting ones, never
    each queued row (it did: 0.35 ms of the server's time a build behind 1,000)."""
    with PostgreSQLStorage(pg_url) as storage:
        sql = storage.sql["slot_waiters"]
        assert f"'{SLOT_WAIT}%%'" in sql  # the reason's text, its % doubled for psycopg2
        for _ in range(300):
            storage.enqueue_build("job", definition={}, definition_hash="h",
                                  dependency_builds={}, queue="q")
        waiting = storage.enqueue_build("job", definition={}, definition_hash="h",
                                        dependency_builds={}, queue="q")
        assert waiting is not None
        storage.wait_for_slot(waiting.id, f"{SLOT_WAIT}: job job was running #1")
        assert [b.id for b in storage.slot_waiters("job")] == [waiting.id]
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("ANALYZE builds")
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql.replace("{build_columns}", "id"),
                    ("job", 1))
        plan = "\n".join(row[0] for row in cur.fetchall())
    conn.close()
    assert "builds_slot_waiters" in plan and "Rows Removed" not in plan, plan
