"""``JobControl.prune`` and ``jobcontrol prune`` on every backend, up to 10,000 builds.

Histories are written straight into the storage (:mod:`tests.bulk`), backdated, each build
with one log record of each of DEBUG, INFO and WARNING and one progress row.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from jobcontrol import BuildState, JobControl, UnknownJobError
from jobcontrol.storage import Storage
from jobcontrol.timeutil import utcnow
from tests.bulk import LOG_LEVELS, Spec, insert_builds, row_counts
from tests.support import Cli, make_project

S = BuildState
LOGS = len(LOG_LEVELS)


def spec(job: str, state: BuildState, days_ago: float) -> Spec:
    return Spec(job, state, utcnow() - timedelta(days=days_ago))


def make_jc(tmp_path: Path, storage: Storage, jobs_yaml: str) -> JobControl:
    return JobControl.from_config(make_project(tmp_path, "jobs:\n" + jobs_yaml), storage=storage)


def stub_ids(storage: Storage, job: str) -> list[int]:
    return sorted(s.id for s in storage.build_stubs(job))


# a's history, oldest first: #1 S, #2 F, #3 F, #4 S (its latest success), #5-#7 F, #8 running
A_STATES = [S.SUCCESS, S.FAILED, S.FAILED, S.SUCCESS, S.FAILED, S.FAILED, S.FAILED, S.RUNNING]
CLEANED_JOBS = """\
  - {id: a, function: jobfuncs.make, args: [a], cleanup_function: jobfuncs.picky_cleanup,
     retention: {keep_last: 2}}
  - {id: b, function: jobfuncs.make, args: [b]}
"""


def history(storage: Storage) -> None:
    insert_builds(storage, [spec("a", state, 10 - n) for n, state in enumerate(A_STATES)]
                  + [spec("b", S.SUCCESS, 10), spec("b", S.FAILED, 9)])


def test_prune_runs_cleanup_and_deletes_builds_with_logs_and_progress(
        tmp_path: Path, storage: Storage) -> None:
    jc = make_jc(tmp_path, storage, CLEANED_JOBS)
    history(storage)
    (tmp_path / "refuse-5").touch()  # build 5's cleanup fails: it stays
    report = jc.prune()
    a, b = report.jobs
    # kept: the last two (#8 running, #7), the latest success #4, and #5 (cleanup failed)
    assert a.deleted == (1, 2, 3, 6)
    assert (a.deleted_logs, a.trimmed_logs, a.kept) == (4 * LOGS, 0, 4)
    [failure] = a.failures
    assert failure.build_id == 5
    assert failure.message == ("cleanup of build 5 (jobfuncs.picky_cleanup) failed: "
                               "RuntimeError: build 5 is still in use; the build was kept")
    assert not report.ok and report.deleted_builds == 4 and report.deleted_logs == 4 * LOGS
    assert (b.has_policy, b.deleted, b.kept) == (False, (), 0)
    assert sorted(p.name for p in tmp_path.glob("cleaned-*")) == [
        "cleaned-1", "cleaned-2", "cleaned-3", "cleaned-6"]
    assert stub_ids(storage, "a") == [4, 5, 7, 8]
    assert stub_ids(storage, "b") == [9, 10]
    for gone in a.deleted:
        assert storage.get_logs(gone) == [] and storage.get_progress(gone) == []
    assert len(storage.get_logs(4)) == LOGS and len(storage.get_progress(4)) == 1
    assert row_counts(storage) == {"builds": 6, "logs": 6 * LOGS, "progress": 6}
    assert not jc.prune().jobs[0].deleted  # #5 still refuses; nothing else is due


def test_dry_run_deletes_nothing_and_reports_what_would_go(
        tmp_path: Path, storage: Storage) -> None:
    jc = make_jc(tmp_path, storage, CLEANED_JOBS)
    history(storage)
    before = row_counts(storage)
    dry = jc.prune(dry_run=True)
    assert row_counts(storage) == before
    assert not list(tmp_path.glob("cleaned-*"))  # no cleanup ran
    real = jc.prune()
    assert dry.dry_run and not real.dry_run
    assert dry.jobs == real.jobs and real.jobs[0].deleted == (1, 2, 3, 5, 6)


def test_log_records_go_by_level_and_age(tmp_path: Path, storage: Storage) -> None:
    jc = make_jc(tmp_path, storage, """\
  - {id: d, function: jobfuncs.make, args: [d], retention: {logs: {DEBUG: 2d}}}
  - {id: i, function: jobfuncs.make, args: [i], retention: {logs: {info: 2d, error: 90d}}}
""")
    # #1 old, #2 young, #3 old but running: its log is still being written
    insert_builds(storage, [spec("d", S.SUCCESS, 5), spec("d", S.FAILED, 1),
                            spec("d", S.RUNNING, 5), spec("i", S.FAILED, 5)])
    report = jc.prune()
    assert [(j.deleted, j.trimmed_logs, j.kept) for j in report.jobs] == [
        ((), 1, 3), ((), 2, 1)]
    assert report.ok and report.deleted_logs == 3

    def levels(build_id: int) -> list[int]:
        return [r.level for r in storage.get_logs(build_id)]

    assert levels(1) == [logging.INFO, logging.WARNING]
    assert levels(2) == levels(3) == list(LOG_LEVELS)
    assert levels(4) == [logging.WARNING]  # INFO and the levels below it
    assert jc.prune().deleted_logs == 0


def test_a_cleanup_that_does_not_import_keeps_every_build(
        tmp_path: Path, storage: Storage) -> None:
    jc = make_jc(tmp_path, storage, """\
  - {id: a, function: jobfuncs.make, cleanup_function: jobfuncs.nowhere,
     retention: {keep_last: 1}}
""")
    insert_builds(storage, [spec("a", S.FAILED, 3 - n) for n in range(3)])
    [job] = jc.prune().jobs
    assert job.deleted == () and job.kept == 3 and not job.failures
    assert job.error is not None and "nowhere" in job.error
    assert job.error.endswith("; no build of a was deleted")
    assert stub_ids(storage, "a") == [1, 2, 3]


def test_prune_of_named_jobs_only(tmp_path: Path, storage: Storage) -> None:
    jc = make_jc(tmp_path, storage, """\
  - {id: a, function: jobfuncs.make, retention: {keep_last: 1}}
  - {id: b, function: jobfuncs.make, retention: {keep_last: 1}}
""")
    insert_builds(storage, [spec(job, S.FAILED, 2 - n) for job in "ab" for n in range(2)])
    assert [j.job_id for j in jc.prune(job_ids=["b"]).jobs] == ["b"]
    assert (stub_ids(storage, "a"), stub_ids(storage, "b")) == ([1, 2], [4])
    with pytest.raises(UnknownJobError):
        jc.prune(job_ids=["c"])


def test_outdated_verdicts_and_retval_survive_pruning(tmp_path: Path, storage: Storage) -> None:
    jc = make_jc(tmp_path, storage, """\
  - {id: a, function: jobfuncs.make, args: [a], isolation: inline, retention: {keep_last: 1}}
  - id: b
    function: jobfuncs.make
    dependencies: [a]
    kwargs: {tag: b, value: !retval a}
    isolation: inline
    retention: {keep_last: 1}
""")
    for job in ("a", "b", "a", "a"):  # b consumed a's #1; a has #3 and #4 since
        jc.build(job)
    before = jc.outdated()
    assert before["b"].reasons == ("dependency a has a newer build (4; this job used build 1)",)
    report = jc.prune()
    assert [j.deleted for j in report.jobs] == [(1, 3), ()]  # b's consumed #1 goes too
    assert jc.outdated() == before
    [rebuilt] = jc.build("b")
    assert rebuilt.retval["got"]["build"] == 4 and rebuilt.dependency_builds == {"a": 4}


def test_prune_command(tmp_path: Path, storage: Storage) -> None:
    cli = Cli(make_project(tmp_path, "jobs:\n" + CLEANED_JOBS), storage)
    history(storage)
    dry = cli("prune", "--dry-run")
    assert "would delete 5 builds and 15 log records (dry run: nothing was deleted)" \
        in dry.output
    assert "#1-#3, #5-#6" in dry.output and "(no retention policy)" in dry.output
    (tmp_path / "refuse-5").touch()
    data = json.loads(cli("prune", "a", "--format", "json", code=1).stdout)
    assert data["dry_run"] is False and data["deleted_builds"] == 4
    [job] = data["jobs"]
    assert job["deleted"] == [1, 2, 3, 6] and job["deleted_logs"] == 4 * LOGS
    assert job["failures"] == [{"build": 5, "message": (
        "cleanup of build 5 (jobfuncs.picky_cleanup) failed: RuntimeError: build 5 is still "
        "in use; the build was kept")}]
    failed = cli("prune", code=1)
    assert "Error: cleanup of build 5" in failed.stderr
    (tmp_path / "refuse-5").unlink()
    done = cli("prune")
    assert "deleted 1 build and 3 log records" in done.output and "#5" in done.output
    cli("prune", "nope", code=2)


# -- acceptance: 10,000 builds -----------------------------------------------------------------

SCALE_JOBS = """\
  - {id: alpha, function: jobfuncs.make, retention: {keep_last: 500, keep_for: 10d,
                                                     logs: {DEBUG: 2d}}}
  - {id: beta, function: jobfuncs.make, retention: {keep_for: 30d}}
  - {id: gamma, function: jobfuncs.make}
  - {id: delta, function: jobfuncs.make, cleanup_function: jobfuncs.record_cleanup,
     retention: {keep_last: 3}}
"""
POLICIES = {"alpha": (500, 1000), "beta": (None, 3000), "gamma": None, "delta": (3, None)}
TOTAL = 10_000


def scale_history() -> list[tuple[str, BuildState, int]]:
    """(job, state, hundredths of a day ago) for 10,000 builds over 100 days, oldest first.

    Ages are whole hundredths of a day, so a build is never within minutes of a keep_for or
    logs limit (those are whole days) and the test's verdicts cannot flip while it runs.
    """
    jobs = ["alpha"] * 12 + ["beta"] * 5 + ["gamma"] * 2 + ["delta"]  # 60%, 25%, 10%, 5%
    rows = []
    for n in range(TOTAL):
        job = jobs[n % len(jobs)]
        state = S.FAILED if n % 7 == 3 else S.SUCCESS
        if job == "delta" and n > 2000:
            state = S.FAILED  # its latest success is 80 days old
        if n in (100, 4000):
            state = S.RUNNING  # 99 and 60 days old, still beating elsewhere
        if n == 150:
            state = S.QUEUED
        rows.append((job, state, TOTAL - n))
    return rows


def expected_survivors(rows: Sequence[tuple[int, str, BuildState, int]]) -> set[int]:
    """The ids retention must keep, by its rules written as set algebra."""
    kept: set[int] = set()
    for job, policy in POLICIES.items():
        mine = sorted((r for r in rows if r[1] == job), reverse=True)  # newest first
        if policy is None:
            kept |= {r[0] for r in mine}
            continue
        keep_last, keep_hundredths = policy
        kept |= {r[0] for r in mine if not r[2].finished}
        kept |= {next(r[0] for r in mine if r[2].ok)}
        kept |= {next(r[0] for r in mine if r[2] is S.SUCCESS)}
        kept |= {r[0] for r in mine[:keep_last or 0]}
        if keep_hundredths is not None:
            kept |= {r[0] for r in mine if r[3] < keep_hundredths}
    return kept


def test_prune_ten_thousand_builds(tmp_path: Path, storage: Storage) -> None:
    jc = make_jc(tmp_path, storage, SCALE_JOBS)
    planned = scale_history()
    started = time.monotonic()
    ids = insert_builds(storage, [Spec(job, state, utcnow() - timedelta(days=age / 100))
                                  for job, state, age in planned])
    filled = time.monotonic() - started
    rows = [(build_id, *row) for build_id, row in zip(ids, planned, strict=True)]
    assert row_counts(storage) == {"builds": TOTAL, "logs": TOTAL * LOGS, "progress": TOTAL}
    summaries = storage.job_summaries()

    started = time.monotonic()
    report = jc.prune()
    took = time.monotonic() - started
    print(f"\n{type(storage).__name__}: filled in {filled:.2f}s, pruned {TOTAL} builds "
          f"({report.deleted_builds} deleted) in {took:.2f}s")

    survivors = expected_survivors(rows)
    assert 2000 < len(survivors) < 3000  # every rule has work to do
    for job in POLICIES:
        assert stub_ids(storage, job) == sorted(r[0] for r in rows
                                                 if r[1] == job and r[0] in survivors)
    # DEBUG records went from alpha's surviving builds created 2 days ago or more
    trimmed = sum(1 for r in rows if r[0] in survivors and r[1] == "alpha"
                  and r[2].finished and r[3] >= 200)
    assert row_counts(storage) == {"builds": len(survivors),
                                   "logs": len(survivors) * LOGS - trimmed,
                                   "progress": len(survivors)}
    assert report.ok and report.deleted_builds == TOTAL - len(survivors)
    assert report.deleted_logs == (TOTAL - len(survivors)) * LOGS + trimmed
    assert sum(j.kept for j in report.jobs if j.has_policy) == len(
        [r for r in rows if r[0] in survivors and r[1] != "gamma"])
    # delta's cleanup ran for each of its deleted builds, and for no other
    delta = next(j for j in report.jobs if j.job_id == "delta")
    cleaned = sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("cleaned-*"))
    assert cleaned == list(delta.deleted) and len(cleaned) > 400
    # what status and the outdated rules read is unchanged
    after = storage.job_summaries()
    for job, summary in summaries.items():
        assert after[job].last_success == summary.last_success
        assert after[job].running == summary.running


# -- soak: a year of cron runs in a few seconds ------------------------------------------------

ROUNDS, PER_ROUND, KEEP = 12, 150, 20


def test_row_counts_stay_bounded_while_builds_keep_coming(
        tmp_path: Path, storage: Storage) -> None:
    jc = make_jc(tmp_path, storage, f"""\
  - {{id: cron, function: jobfuncs.make, retention: {{keep_last: {KEEP}, logs: {{DEBUG: 0s}}}}}}
""")
    # the last KEEP builds and the latest success (one a round, far from the newest); per
    # build INFO and WARNING records (DEBUG goes at once) and one progress row
    bound = {"builds": KEEP + 1, "logs": (KEEP + 1) * (LOGS - 1), "progress": KEEP + 1}
    for round_ in range(ROUNDS):
        insert_builds(storage, [
            spec("cron", S.SUCCESS if n == 60 else S.FAILED,
                 ROUNDS - round_ + (PER_ROUND - n) / 1000)
            for n in range(PER_ROUND)
        ])
        assert row_counts(storage)["builds"] == PER_ROUND + (bound["builds"] if round_ else 0)
        report = jc.prune()
        assert report.ok
        assert row_counts(storage) == bound, round_
    latest_success = (ROUNDS - 1) * PER_ROUND + 61
    assert latest_success in stub_ids(storage, "cron")
    assert storage.job_summaries()["cron"].last_output_id == latest_success
