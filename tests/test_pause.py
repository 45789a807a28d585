"""Pausing jobs: ``pause``/``resume`` recorded with who and when; a paused job is not
started by ``build`` (without ``--force``), ``build --deps``/``--depending`` (its dependents
neither), ``build --async``, ``run-due`` (its instants recorded ``paused``) or the
scheduler; ``status`` shows it. Every backend (the ``storage`` fixture)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from jobcontrol import JobControl
from jobcontrol.errors import JobPausedError
from jobcontrol.models import BuildState
from jobcontrol.pausing import who
from jobcontrol.scheduler import DueReport, _build_group, claim_due
from jobcontrol.storage import Storage
from tests.support import Cli, make_project

UTC = timezone.utc
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

CONFIG = """\
jobs:
  - {id: fetch, function: jobfuncs.make, args: [fetch], isolation: inline}
  - {id: report, function: jobfuncs.make, args: [report], dependencies: [fetch],
     isolation: inline}
  - {id: mail, function: jobfuncs.make, args: [mail], dependencies: [report],
     isolation: inline}
  - {id: other, function: jobfuncs.make, args: [other], isolation: inline}
  - {id: bad, function: jobfuncs.fails, isolation: inline}
  - id: tick
    function: jobfuncs.noop
    isolation: inline
    schedule: "* * * * *"
    schedule_options: {catchup: all, misfire_grace: 5m}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_project(tmp_path, CONFIG)


@pytest.fixture
def cli(config: Path, storage: Storage) -> Cli:
    return Cli(config, storage)


@pytest.fixture
def jc(config: Path, storage: Storage) -> JobControl:
    return JobControl.from_config(config, storage=storage)


def built(storage: Storage, job: str) -> list[BuildState]:
    return [build.state for build in storage.list_builds(job)]


# -- pause, resume, status ---------------------------------------------------------------------


def test_pause_and_resume_are_recorded_with_who_and_when(cli: Cli, storage: Storage) -> None:
    out = cli("pause", "fetch", "--reason", "upstream API down").output
    pause = storage.job_pauses()["fetch"]
    assert pause.paused_by == who() and pause.reason == "upstream API down"
    assert out.strip() == f"fetch: {pause.describe()}"
    assert "since" in out and "upstream API down" in out
    again = cli("pause", "fetch", "--reason", "other").output
    assert again.startswith("fetch: already paused by") and "upstream API down" in again
    resumed = json.loads(cli("resume", "fetch", "--format", "json").output)
    assert resumed["by"] == who() and resumed["resumed_by"] == who()
    assert resumed["reason"] == "upstream API down" and resumed["resumed"] is not None
    assert storage.job_pauses() == {}
    assert cli("resume", "fetch").output.strip() == "fetch: not paused"
    [ended] = storage.pause_history("fetch")
    assert ended.resumed_by == who()


def test_pause_of_an_unknown_job_is_a_usage_error(cli: Cli, storage: Storage) -> None:
    result = cli("pause", "fech", code=2)
    assert "fech" in result.output
    assert storage.job_pauses() == {}


def test_a_reason_is_kept_on_one_line(jc: JobControl) -> None:
    pause, _ = jc.pause("fetch", by="web:alice", reason="line one\n\x1b[31mline two")
    assert "\n" not in (pause.reason or "")
    assert pause.paused_by == "web:alice"


def test_status_shows_the_pause(cli: Cli, jc: JobControl) -> None:
    jc.pause("fetch", reason="maintenance")
    table = cli("status").output
    assert "paused" in table.splitlines()[0]
    [row] = [line for line in table.splitlines() if line.startswith("fetch")]
    assert "paused by" in row and "maintenance" in row
    [other] = [line for line in table.splitlines() if line.startswith("other")]
    assert "paused by" not in other
    rows = {row["job"]: row for row in json.loads(cli("status", "--format", "json").output)}
    assert rows["fetch"]["paused"]["reason"] == "maintenance"
    assert rows["fetch"]["paused"]["by"] == who()
    assert rows["other"]["paused"] is None
    jc.resume("fetch")
    assert "paused" not in cli("status").output


# -- build -------------------------------------------------------------------------------------


def test_build_of_a_paused_job_exits_0_with_one_line(cli: Cli, jc: JobControl,
                                                    storage: Storage) -> None:
    jc.pause("fetch", reason="upstream API down")
    result = cli("build", "fetch")
    assert built(storage, "fetch") == []
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("fetch: not built (paused by ")
    assert "upstream API down" in lines[0] and "--force" in lines[0]
    cli("build", "fetch", "--force")
    assert built(storage, "fetch") == [BuildState.SUCCESS]
    assert storage.job_pauses().keys() == {"fetch"}  # forcing does not resume


def test_other_targets_of_the_command_are_built(cli: Cli, jc: JobControl,
                                                storage: Storage) -> None:
    jc.pause("fetch")
    cli("build", "fetch", "other")
    assert built(storage, "fetch") == []
    assert built(storage, "other") == [BuildState.SUCCESS]


def test_deps_a_paused_outdated_dependency_holds_its_dependents(
        cli: Cli, jc: JobControl, storage: Storage) -> None:
    jc.pause("fetch", reason="maintenance")
    out = cli("build", "mail", "--deps").output
    assert built(storage, "fetch") == built(storage, "report") == built(storage, "mail") == []
    assert "fetch: not built (paused by" in out
    assert "report: not built (dependency fetch is paused)" in out
    assert "mail: not built (dependency report is paused)" in out
    cli("build", "mail", "--deps", "--force")
    assert built(storage, "mail") == [BuildState.SUCCESS]


def test_deps_a_paused_dependency_up_to_date_holds_nothing(
        cli: Cli, jc: JobControl, storage: Storage) -> None:
    cli("build", "fetch")
    jc.pause("fetch")
    out = cli("build", "report", "--deps").output
    assert "fetch: not built (up to date)" in out
    assert built(storage, "fetch") == [BuildState.SUCCESS]
    assert built(storage, "report") == [BuildState.SUCCESS]


def test_depending_a_paused_dependent_is_not_rebuilt(cli: Cli, jc: JobControl,
                                                     storage: Storage) -> None:
    cli("build", "mail", "--deps")
    jc.pause("report")
    out = cli("build", "fetch", "--depending").output
    assert built(storage, "fetch") == [BuildState.SUCCESS] * 2
    assert built(storage, "report") == built(storage, "mail") == [BuildState.SUCCESS]
    assert "report: not built (paused by" in out
    assert "mail: not built (dependency report is paused)" in out


def test_build_async_refuses_a_paused_job(tmp_path: Path, storage: Storage) -> None:
    config = make_project(tmp_path, "executor: {type: celery, broker: 'redis://127.0.0.1:1/0'}\n"
                          + CONFIG)
    sent: list[int] = []
    jc = JobControl(JobControl.from_config(config, storage=storage).config, storage,
                    sender=lambda build_id, queue, job=None: sent.append(build_id))
    jc.pause("fetch", reason="maintenance")
    with pytest.raises(JobPausedError, match="maintenance") as info:
        jc.submit(["report"], deps=True)
    assert info.value.exit_code == 0
    assert storage.list_builds() == [] and sent == []  # nothing queued
    assert [b.job_id for b in jc.submit(["report"], deps=True, force=True)] == ["fetch",
                                                                                "report"]
    result = Cli(config, storage)("build", "--async", "fetch")
    assert result.output.strip().startswith("job 'fetch' is paused by")


# -- schedules ---------------------------------------------------------------------------------


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def outcomes(storage: Storage) -> list[tuple[datetime, str]]:
    return sorted((run.scheduled_for, run.outcome) for run in storage.scheduled_runs("tick"))


def test_run_due_records_the_instants_of_a_paused_job_paused(jc: JobControl,
                                                             storage: Storage) -> None:
    jc.run_due(now=minute(0.5))  # the instants up to 09:00 (catchup all, grace 5m)
    before = outcomes(storage)
    assert before[-1] == (minute(0), "started")
    jc.pause("tick", reason="maintenance")
    report = jc.run_due(now=minute(3.5))  # 09:01, 09:02, 09:03 due
    assert not report.failed and report.started == []
    assert [(job, when) for job, when, _ in report.not_built] == [
        ("tick", minute(1)), ("tick", minute(2)), ("tick", minute(3))]
    assert all("paused by" in why and "maintenance" in why for _, _, why in report.not_built)
    assert outcomes(storage) == [*before, (minute(1), "paused"), (minute(2), "paused"),
                                 (minute(3), "paused")]
    assert len(storage.list_builds("tick")) == len(before)
    jc.resume("tick")
    report = jc.run_due(now=minute(4.5))  # the paused ones are not caught up
    assert [when for _, when, _ in report.started] == [minute(4)]
    assert outcomes(storage)[-1] == (minute(4), "started")
    assert len(storage.list_builds("tick")) == len(before) + 1


def test_run_due_cli_says_paused_and_exits_0(cli: Cli, jc: JobControl) -> None:
    jc.pause("tick", reason="maintenance")
    out = cli("run-due", "--at", minute(0.5).isoformat()).output
    assert "not built (paused by" in out and "maintenance" in out
    data = json.loads(cli("run-due", "--at", minute(1.5).isoformat(), "--format",
                          "json").output)
    assert data["started"] == [] and data["errors"] == []
    assert data["not_built"][0]["reason"].startswith("paused by")


def test_an_instant_claimed_before_the_pause_is_recorded_paused(jc: JobControl,
                                                                storage: Storage) -> None:
    # the scheduler claims an instant, then builds it when there is room: paused meanwhile
    jc.run_due(now=minute(0.5))
    builds = len(storage.list_builds("tick"))
    report = DueReport()
    groups = claim_due(jc, report, now=minute(1.5))
    assert groups and groups[0].instants == [("tick", minute(1))]
    jc.pause("tick")
    _build_group(jc, groups[0].instants, deps=False, if_outdated=False, report=report,
                 observer=None)
    assert outcomes(storage)[-1] == (minute(1), "paused")
    assert len(storage.list_builds("tick")) == builds
    assert report.not_built[0][2].startswith("paused by")


def test_dry_run_shows_what_the_pause_holds(cli: Cli, jc: JobControl) -> None:
    jc.pause("fetch", reason="maintenance")
    plan = {step["job"]: step for step in json.loads(
        cli("build", "mail", "--deps", "--dry-run", "--format", "json").output)}
    assert not any(step["build"] for step in plan.values())
    assert plan["fetch"]["reason"].startswith("paused by") and "maintenance" in \
        plan["fetch"]["reason"]
    assert plan["report"]["reason"] == "dependency fetch is paused"
    assert plan["mail"]["reason"] == "dependency report is paused"
    forced = json.loads(cli("build", "mail", "--deps", "--dry-run", "--force", "--format",
                            "json").output)
    assert all(step["build"] for step in forced)
