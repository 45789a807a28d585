"""Runs: every invocation that starts builds is one run (its trigger, who, when, targets,
parameters), its builds point at it, and its state is derived from them. ``runs``,
``show --run``; ``build`` (with --deps), ``build`` from the web's launcher and run-due.
Every backend (the ``storage`` fixture)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from jobcontrol import JobControl
from jobcontrol.errors import RunNotFoundError
from jobcontrol.models import Build, BuildState, RunTrigger
from jobcontrol.pausing import who
from jobcontrol.rules.runs import RunState, run_state
from jobcontrol.storage import Storage
from tests.support import Cli, make_project

UTC = timezone.utc

CONFIG = """\
jobs:
  - {id: fetch, function: jobfuncs.make, args: [fetch], isolation: inline}
  - {id: report, function: jobfuncs.make, args: [report], dependencies: [fetch],
     isolation: inline}
  - {id: bad, function: jobfuncs.fails, isolation: inline}
  - id: tick
    function: runjobs.instant
    isolation: inline
    schedule: "0 3 * * *"
    schedule_options: {catchup: all, misfire_grace: 2d}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_project(tmp_path, CONFIG, modules=("runjobs",))


@pytest.fixture
def cli(config: Path, storage: Storage) -> Cli:
    return Cli(config, storage)


@pytest.fixture
def jc(config: Path, storage: Storage) -> JobControl:
    return JobControl.from_config(config, storage=storage)


def test_a_deps_chain_is_one_run_its_builds_point_at(cli: Cli, storage: Storage) -> None:
    cli("build", "report", "--deps")
    [run] = storage.list_runs()
    assert (run.trigger, run.by, run.targets, run.params) == (RunTrigger.CLI, who(),
                                                              ("report",), {})
    builds = storage.run_builds([run.id])[run.id]
    assert [(b.job_id, b.state) for b in builds] == [("fetch", BuildState.SUCCESS),
                                                     ("report", BuildState.SUCCESS)]
    assert {b.run_id for b in storage.list_builds()} == {run.id}
    shown = json.loads(cli("show", "--run", str(run.id), "--format", "json").output)
    assert shown["state"] == "success" and shown["trigger"] == "cli"
    assert [b["job"] for b in shown["builds"]] == ["fetch", "report"]
    assert all(b["run"] == run.id for b in shown["builds"])
    fields = [line.split(None, 1) for line in cli("show", "--run", str(run.id)).output
              .splitlines() if line.strip()]
    assert ["run", f"#{run.id}"] in fields and ["targets", "report"] in fields
    assert ["state", "success"] in fields and ["trigger", "cli"] in fields
    assert any(row[0] == "1" and "fetch" in row[1] for row in fields)  # its builds' table
    build_fields = [line.split(None, 1) for line in cli("show", str(builds[0].id)).output
                    .splitlines() if line.strip()]
    assert ["run", f"#{run.id}"] in build_fields


def test_a_retry_by_hand_records_retry_of_in_the_same_run(cli: Cli, storage: Storage) -> None:
    cli("build", "bad", code=1)
    [first] = storage.list_builds("bad")
    cli("build", "bad", "--retry-of", str(first.id), code=1)
    retry = storage.get_retry(first.id)
    assert retry is not None and retry.retry_of == first.id
    run_id = first.run_id
    assert run_id is not None and retry.run_id == run_id and len(storage.list_runs()) == 1
    assert [b.id for b in storage.run_builds([run_id])[run_id]] == [first.id, retry.id]
    again = cli("build", "bad", "--retry-of", str(first.id), code=5)
    assert f"build {first.id} was retried already, by build {retry.id}" in again.output
    cli("build", "fetch")
    [fetched] = storage.list_builds("fetch")
    refused = cli("build", "fetch", "--retry-of", str(fetched.id), code=5)
    assert "is success: only a failed, abandoned or cancelled build is retried" in \
        refused.output
    wrong = cli("build", "fetch", "--retry-of", str(retry.id), code=2)
    assert "give its job, bad, as the only JOBS" in wrong.output
    assert len(storage.list_builds("bad")) == 2  # nothing else was built


def test_runs_lists_newest_first_with_states_and_filters_by_job(cli: Cli) -> None:
    cli("build", "fetch")
    cli("build", "bad", code=1)
    cli("build", "report")
    listed = json.loads(cli("runs", "--format", "json").output)
    assert [(r["targets"], r["state"]) for r in listed] == [
        (["report"], "success"), (["bad"], "failed"), (["fetch"], "success")]
    assert listed[1]["builds"][0]["job"] == "bad"
    only = json.loads(cli("runs", "--job", "fetch", "--format", "json").output)
    assert [r["targets"] for r in only] == [["fetch"]]
    assert len(json.loads(cli("runs", "--limit", "1", "--format", "json").output)) == 1
    text = cli("runs").output
    assert text.splitlines()[0].startswith(f"run #{listed[0]['id']} success: cli by {who()}")
    assert "#2 bad failed" in text


def test_an_invocation_that_builds_nothing_is_no_run_and_an_unknown_one_is_not_found(
        cli: Cli, jc: JobControl) -> None:
    """``build --if-outdated`` from cron, everything up to date, every few minutes: no
    run is recorded for it (a run is recorded with its first build); a run whose builds
    were deleted since is ``empty``."""
    cli("build", "fetch")
    [made] = jc.runs()
    cli("build", "fetch", "--if-outdated")  # up to date: nothing built
    cli("pause", "fetch")
    cli("build", "fetch")  # paused: nothing built
    assert [view.run.id for view in jc.runs()] == [made.run.id]
    jc.delete_build(made.builds[0].id)
    [emptied] = jc.runs()
    assert emptied.builds == () and emptied.state is RunState.EMPTY
    result = cli("show", "--run", "99", code=2)
    assert result.output.strip() == "Error: run 99 not found"
    with pytest.raises(RunNotFoundError):
        jc.get_run(99)
    assert "give a BUILD id or --run ID" in cli("show", code=2).output


def test_a_launch_from_the_web_records_its_trigger_and_who(cli: Cli, storage: Storage) -> None:
    # what the web's launcher runs (see jobcontrol.web.launch): build with its trigger
    cli("build", "fetch", "--trigger", "web", "--by", "web user alice")
    [run] = storage.list_runs()
    assert (run.trigger, run.by) == (RunTrigger.WEB, "web user alice")


def test_run_due_makes_a_schedule_run_whose_build_reads_its_instant(
        jc: JobControl, storage: Storage) -> None:
    now = datetime(2026, 12, 2, 3, 0, 30, tzinfo=UTC)
    jc.run_due(now=now - timedelta(days=1))  # the day before's instant, a run of its own
    report = jc.run_due(now=now)
    [(_, instant, build)] = report.started
    assert instant == datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    run, *before = storage.list_runs()
    assert run.trigger is RunTrigger.SCHEDULE and run.targets == ("tick",)
    assert run.note == "due at 2026-12-02T03:00:00+00:00 (tick)"
    assert build.run_id == run.id and before and all(b.id < run.id for b in before)
    assert json.loads(storage.get_build(build.id).result.data) == {  # type: ignore[union-attr]
        "scheduled_for": "2026-12-02T03:00:00+00:00",
        "interval": ["2026-12-01T03:00:00+00:00", "2026-12-02T03:00:00+00:00"],
        "run": run.id,
    }


def test_a_build_outside_a_schedule_has_no_instant(jc: JobControl, storage: Storage) -> None:
    [build] = jc.build("tick", trigger="api")
    assert json.loads(build.result.data) == {  # type: ignore[union-attr]
        "scheduled_for": None, "interval": None, "run": build.run_id}
    assert storage.get_run(build.run_id).trigger is RunTrigger.API  # type: ignore[arg-type]


def _build(number: int, state: BuildState, retry_of: int | None = None) -> Build:
    return Build(number, "job", state, retry_of=retry_of)


@pytest.mark.parametrize(("states", "expected"), [
    ([], RunState.EMPTY),
    ([BuildState.SUCCESS, BuildState.SKIPPED], RunState.SUCCESS),
    ([BuildState.SUCCESS, BuildState.RUNNING], RunState.RUNNING),
    ([BuildState.FAILED, BuildState.QUEUED], RunState.RUNNING),
    ([BuildState.SUCCESS, BuildState.FAILED], RunState.FAILED),
    ([BuildState.ABANDONED], RunState.FAILED),
    ([BuildState.CANCELLED, BuildState.SUCCESS], RunState.CANCELLED),
    ([BuildState.CANCELLED, BuildState.FAILED], RunState.FAILED),
])
def test_the_run_state_rule(states: list[BuildState], expected: RunState) -> None:
    assert run_state([_build(n, s) for n, s in enumerate(states, 1)]) is expected


def test_a_failure_retried_to_success_does_not_fail_its_run() -> None:
    assert run_state([_build(1, BuildState.FAILED),
                      _build(2, BuildState.SUCCESS, retry_of=1)]) is RunState.SUCCESS
    assert run_state([_build(1, BuildState.FAILED),
                      _build(2, BuildState.FAILED, retry_of=1)]) is RunState.FAILED
