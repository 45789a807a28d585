"""Schedules with a controllable clock: run-due at chosen times, the catch-up policies, DST,
overlaps, freshness, crontab lines and the config's checks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from jobcontrol import BuildState, ConfigError, JobControl
from jobcontrol.core import stale_reason
from jobcontrol.schedule import Schedule, ScheduleOptions, due_runs
from jobcontrol.storage import Storage
from tests.support import Cli, make_project

UTC = timezone.utc
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def project(tmp_path: Path, storage: Storage, jobs: str, defaults: str = "") -> JobControl:
    text = (f"defaults:\n{defaults}" if defaults else "") + "jobs:\n" + jobs
    return JobControl.from_config(make_project(tmp_path, text), storage=storage)


def every_minute(catchup: str, grace: str = "5m") -> str:
    return f"""\
  - id: tick
    function: jobfuncs.noop
    isolation: inline
    schedule: "* * * * *"
    schedule_options: {{catchup: {catchup}, misfire_grace: {grace}}}
"""


def instants(jc: JobControl, job: str = "tick") -> list[tuple[datetime, str]]:
    runs = jc.storage.scheduled_runs(job)
    return sorted((run.scheduled_for, run.outcome) for run in runs)


# the same irregular calls for every policy: on time, late by 4 minutes, twice at once,
# then after a long gap
CALLS = [minute(0.5), minute(1.2), minute(5.9), minute(5.95), minute(6.1), minute(30.5)]


def run_calls(jc: JobControl) -> None:
    for now in CALLS:
        jc.run_due(now=now)


@pytest.mark.parametrize(("policy", "grace", "expected"), [
    # latest: the newest instant at each call, the ones between let go
    ("latest", "1m", [(minute(0), "started"), (minute(1), "started"), (minute(5), "started"),
                (minute(6), "started"), (minute(30), "started")]),
    # all: every instant, each once (the long gap: all 24 of them)
    ("all", "1m", [(minute(m), "started") for m in range(31)]),
    # none, grace 30s: the newest only when on time (09:00 is 30s old when the schedule is
    # first seen: the baseline, not run); one 54s late is recorded missed
    ("none", "30s", [(minute(0), "baseline"), (minute(1), "started"), (minute(5), "missed"),
                     (minute(6), "started"), (minute(30), "started")]),
])
def test_one_build_per_instant_by_catchup_policy(tmp_path: Path, storage: Storage,
                                                 policy: str, grace: str,
                                                 expected: list) -> None:
    jc = project(tmp_path, storage, every_minute(policy, grace))
    run_calls(jc)
    assert instants(jc) == expected
    builds = jc.builds("tick")
    started = [run for run in jc.storage.scheduled_runs("tick") if run.outcome == "started"]
    assert len(builds) == len(started)
    assert sorted(run.build_id for run in started) == sorted(b.id for b in builds)
    assert all(b.state is BuildState.SUCCESS for b in builds)
    # calling again at the same times changes nothing
    run_calls(jc)
    assert instants(jc) == expected
    assert len(jc.builds("tick")) == len(builds)


def test_a_new_schedule_does_not_replay_the_past(tmp_path: Path, storage: Storage) -> None:
    jc = project(tmp_path, storage, every_minute("all", "2m"))
    report = jc.run_due(now=minute(100.5))
    assert [when for _, when, _ in report.started] == [minute(99), minute(100)]


def test_due_runs_is_pure() -> None:
    schedule = Schedule("*/10 * * * *", options=ScheduleOptions(catchup="none",
                                                               misfire_grace=60))
    assert due_runs(schedule, minute(0), minute(5)).run == []
    assert due_runs(schedule, minute(0), minute(10.5)).run == [minute(10)]
    late = due_runs(schedule, minute(0), minute(12))
    assert (late.run, late.missed) == ([], [minute(10)])
    assert due_runs(schedule, minute(10), minute(10)).run == []


def test_a_due_run_of_a_running_job_is_recorded_as_overlap(tmp_path: Path,
                                                           storage: Storage) -> None:
    jc = project(tmp_path, storage, every_minute("latest"))
    running = jc.storage.claim_build("tick", concurrency=1, definition={},
                                     definition_hash="", dependency_builds={},
                                     host="elsewhere", pid=1)
    jc.storage.heartbeat([running.id])
    # a while ago: a time to come would be a dry run, and the next instant is one
    report = jc.run_due(now=jc.storage.now() - timedelta(minutes=10))
    [(_, when, skipped)] = report.overlaps
    assert skipped.state is BuildState.SKIPPED
    assert skipped.reason.startswith("overlap: the run due at ")
    assert skipped.reason.endswith(f"was skipped, #{running.id} still running")
    assert jc.builds("tick")[0].id == skipped.id  # visible in `builds`
    assert instants(jc)[-1] == (when, "overlap")
    jc.storage.finish_build(running.id, BuildState.SUCCESS)
    # the next instant runs normally
    report = jc.run_due(now=when + timedelta(minutes=1, seconds=1))
    [(_, next_when, build)] = report.started
    assert next_when == when + timedelta(minutes=1)
    assert build.state is BuildState.SUCCESS


def test_daily_run_across_both_dst_transitions(tmp_path: Path, storage: Storage) -> None:
    jc = project(tmp_path, storage, """\
  - id: nightly
    function: jobfuncs.noop
    isolation: inline
    schedule: "30 2 * * *"
    timezone: Europe/Berlin
""")
    for start in (datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 10, 23, 12, tzinfo=UTC)):
        for half_hours in range(4 * 48):  # every 30 minutes, 4 days long
            jc.run_due(now=start + timedelta(minutes=30 * half_hours, seconds=10))
    got = [when for when, outcome in instants(jc, "nightly") if outcome == "started"]
    assert got == [
        # 02:30 CET = 01:30 UTC; on 29 March 02:30 does not exist: 03:00 CEST = 01:00 UTC
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC), datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
        # catchup latest: months later, the newest instant runs, the rest are let go
        datetime(2026, 10, 23, 0, 30, tzinfo=UTC),
        # on 25 October 02:30 happens twice: 02:30 CEST (00:30 UTC) and 02:30 CET (01:30)
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ]
    assert len(jc.builds("nightly")) == len(got)


def test_deps_and_if_outdated_options(tmp_path: Path, storage: Storage) -> None:
    jc = project(tmp_path, storage, """\
  - {id: up, function: jobfuncs.noop, isolation: inline}
  - id: down
    function: jobfuncs.noop
    isolation: inline
    dependencies: [up]
    schedule: "0 * * * *"
    schedule_options: {deps: true, if_outdated: true}
""")
    report = jc.run_due(now=minute(60.5))
    assert [build.job_id for build in jc.builds()] == ["down", "up"]
    assert [job for job, _, _ in report.started] == ["down"]
    report = jc.run_due(now=minute(120.5))  # nothing changed: up to date
    [(job, when, reason)] = report.not_built
    assert (job, when) == ("down", minute(120))
    assert "up to date" in reason
    assert instants(jc, "down")[-1] == (minute(120), "not_built")


def test_status_shows_next_and_last_scheduled_run(tmp_path: Path, storage: Storage) -> None:
    jc = project(tmp_path, storage, every_minute("latest") + """\
  - {id: plain, function: jobfuncs.noop, max_age: 1h}
""")
    now = jc.storage.now()
    jc.run_due(now=now)
    tick, plain = jc.status()
    assert tick.next_run is not None and now < tick.next_run <= now + timedelta(minutes=1)
    assert tick.last_scheduled is not None and tick.last_scheduled.outcome == "started"
    assert tick.stale is None  # no max_age
    assert plain.next_run is None and plain.last_scheduled is None
    assert plain.stale == "never built successfully (max_age 1h)"
    result = Cli(jc.config.path, storage)("status", "--format", "json")
    rows = {row["job"]: row for row in json.loads(result.output)}
    assert rows["tick"]["last_scheduled"]["outcome"] == "started"
    assert rows["tick"]["next_run"] is not None
    assert rows["plain"]["stale"].startswith("never built")
    text = Cli(jc.config.path, storage)("status").output
    assert "next run (UTC)" in text and "STALE: never built successfully" in text


def test_freshness(tmp_path: Path, storage: Storage) -> None:
    jc = project(tmp_path, storage, """\
  - {id: daily, function: jobfuncs.noop, isolation: inline, max_age: 26h}
  - {id: free, function: jobfuncs.noop, isolation: inline}
""")
    cli = Cli(jc.config.path, storage)
    result = cli("check", "--freshness", code=1)
    assert "STALE daily: never built successfully (max_age 26h)" in result.output
    assert "free" not in result.output.replace("functions", "")
    [build] = jc.build("daily")
    assert "fresh: 1 job with a max_age" in cli("check", "--freshness").output
    daily = jc.job("daily")
    later = build.finished + timedelta(hours=27)
    assert stale_reason(daily, build, later) == (
        "last success 27h ago, more than max_age 26h")
    assert stale_reason(daily, build, build.finished + timedelta(hours=25)) is None


def test_crontab_lines(tmp_path: Path, storage: Storage) -> None:
    jc = project(tmp_path, storage, """\
  - {id: hourly, function: jobfuncs.noop, schedule: "@hourly"}
  - id: berlin
    function: jobfuncs.noop
    schedule: "30 2 * * *"
    timezone: Europe/Berlin
    schedule_options: {deps: false, if_outdated: true}
  - {id: fast, function: jobfuncs.noop, schedule: "* * * * * */5"}
  - {id: manual, function: jobfuncs.noop}
""")
    cli = Cli(jc.config.path, storage)
    config = str(jc.config.path.resolve())
    lines = cli("crontab").output.splitlines()
    assert lines[0] == f"# jobcontrol: {config}"
    assert lines[1].startswith("* * * * * /")
    assert lines[1].endswith(f"-c {config} run-due >> {tmp_path}/jobcontrol-cron.log 2>&1")
    per_job = cli("crontab", "--per-job", "--log", "/var/log/jc.log").output.splitlines()
    assert per_job[1].startswith("@hourly ")
    assert per_job[1].endswith("build hourly --deps >> /var/log/jc.log 2>&1")
    assert per_job[2:5] == [
        "CRON_TZ=Europe/Berlin",
        per_job[3], "CRON_TZ=UTC"]
    assert per_job[3].startswith("30 2 * * * ")
    assert per_job[3].endswith("build berlin --if-outdated >> /var/log/jc.log 2>&1")
    assert per_job[5].startswith("# fast: '* * * * * */5' has seconds")
    assert not any("manual" in line for line in per_job)


def test_run_due_cli(tmp_path: Path, storage: Storage) -> None:
    jc = project(tmp_path, storage, every_minute("all"))
    cli = Cli(jc.config.path, storage)
    # first seen at 09:00:30: the instants within misfire_grace (5m) are due
    assert cli("run-due", "--at", "2026-03-02T09:00:30").output.count(": success") == 5
    result = cli("run-due", "--at", "2026-03-02T10:03:30+01:00", "--format", "json")
    report = json.loads(result.output)
    assert [run["scheduled_for"] for run in report["started"]] == [
        "2026-03-02T09:01:00+00:00", "2026-03-02T09:02:00+00:00", "2026-03-02T09:03:00+00:00"]
    assert cli("run-due", "--at", "2026-03-02T09:03:40").output == ""  # nothing due: silent
    result = cli("run-due", "--at", "yesterday", code=2)
    assert "'yesterday' is not an ISO 8601 time" in result.output


@pytest.mark.parametrize(("yaml_text", "message"), [
    ('schedule: "61 * * * *"', "bad cron expression '61 * * * *'"),
    ('schedule: "* * *"', "3 fields, expected 5 fields"),
    ("schedule: 5", "a schedule is a cron expression"),
    ("timezone: Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
    ("schedule_options: {catchup: some}", "catchup must be latest, all, none, got 'some'"),
    ("schedule_options: {catchp: all}", "unknown key 'catchp' (did you mean 'catchup'?)"),
    ("schedule_options: {deps: yes please}", "deps must be true or false"),
    ("max_age: soon", "bad max_age"),
    ("notify: {targets: [{webhook: ftp://x}]}", "webhook must be an http:// or https:// URL"),
    ("notify: {on: [sometimes], targets: [{call: m.f}]}", "unknown event 'sometimes'"),
    ("notify: {on: [failure]}", "needs 'targets'"),
    ("notify: {targets: [{call: m.f, webhook: http://x}]}", "exactly one of call, webhook"),
    ("notify: {targets: [{email: nobody}]}", "email must be an address"),
])
def test_schedule_mistakes_are_located(tmp_path: Path, yaml_text: str, message: str) -> None:
    config = make_project(tmp_path, f"jobs:\n  - id: a\n    function: m.f\n    {yaml_text}\n")
    with pytest.raises(ConfigError) as caught:
        JobControl.from_config(config, storage="memory://")
    assert message in str(caught.value)
    assert caught.value.line == 4
