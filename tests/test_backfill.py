"""``jobcontrol backfill``: a schedule's instants in a window, oldest first, as one run
(trigger ``backfill``), each build reading its instant and interval; claimed as run-due
claims them, so a backfill killed mid-way (a real process, SIGKILL) and started again runs
each instant exactly once. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime, timezone
from pathlib import Path

import pytest

from jobcontrol import JobControl
from jobcontrol.backfill import backfill
from jobcontrol.errors import JobControlError
from jobcontrol.models import BuildState, RunTrigger
from jobcontrol.storage import Storage, open_storage
from tests.processes import Project, alive, until, wait_for
from tests.support import Cli, make_project

UTC = timezone.utc

CONFIG = """\
jobs:
  - id: nightly
    function: runjobs.instant
    kwargs: {{log: "{log}"}}
    isolation: inline
    schedule: "0 3 * * *"
  - id: hangs
    function: runjobs.instant_or_hang
    kwargs: {{log: "{log}", hang_at: "2026-11-03", started: "{started}"}}
    isolation: inline
    schedule: "0 3 * * *"
  - {{id: plain, function: jobfuncs.noop, isolation: inline}}
  - id: shell
    command: 'echo "$JOBCONTROL_INTERVAL_START..$JOBCONTROL_SCHEDULED_FOR"'
    isolation: inline
    schedule: "0 3 * * *"
  - id: flaky
    function: runjobs.instant_unless
    kwargs: {{log: "{log}", broken: "{broken}"}}
    isolation: inline
    schedule: "0 3 * * *"
"""


def project_config(folder: Path) -> Path:
    return make_project(folder, CONFIG.format(log=folder / "instants.log",
                                              started=folder / "started",
                                              broken=folder / "broken"),
                        modules=("runjobs",))


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    from tests.conftest import make_storage

    opened = make_storage(request.param, tmp_path, request)
    request.addfinalizer(opened.close)
    return opened


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return project_config(tmp_path / "project")


def logged(config: Path) -> list[str]:
    path = config.parent / "instants.log"
    return path.read_text().split() if path.exists() else []


def test_dry_run_lists_the_instants_and_builds_nothing(config: Path, storage: Storage) -> None:
    cli = Cli(config, storage)
    out = cli("backfill", "nightly", "--from", "2026-11-01", "--to", "2026-11-03T05:00",
              "-n").output
    assert out.splitlines() == [f"2026-11-0{day}T03:00:00+00:00  to build" for day in (1, 2, 3)]
    assert storage.list_builds() == [] and storage.list_runs() == []
    assert json.loads(cli("backfill", "nightly", "--from", "2026-11-02", "--to",
                          "2026-11-02T03:00", "-n", "--format", "json").output) == [
        {"instant": "2026-11-02T03:00:00+00:00", "taken": None}]


def test_backfill_runs_each_instant_in_order_as_one_run(config: Path, storage: Storage) -> None:
    cli = Cli(config, storage)
    out = cli("backfill", "nightly", "--from", "2026-11-01T03:00", "--to",
              "2026-11-03T03:00").output
    assert "nightly: 3 instants built, 0 taken on before, 0 not built (run #1)" in out
    assert logged(config) == [f"2026-11-0{day}T03:00:00+00:00" for day in (1, 2, 3)]
    [run] = storage.list_runs()
    assert run.trigger is RunTrigger.BACKFILL and run.targets == ("nightly",)
    builds = storage.run_builds([run.id])[run.id]
    assert [b.state for b in builds] == [BuildState.SUCCESS] * 3
    second = json.loads(builds[1].result.data)  # type: ignore[union-attr]
    assert second == {"scheduled_for": "2026-11-02T03:00:00+00:00",
                      "interval": ["2026-11-01T03:00:00+00:00", "2026-11-02T03:00:00+00:00"],
                      "run": run.id}
    # again: every instant taken on already, nothing built twice, the same run
    again = json.loads(cli("backfill", "nightly", "--from", "2026-11-01T03:00", "--to",
                           "2026-11-03T03:00", "--format", "json").output)
    assert again["built"] == [] and len(again["taken"]) == 3 and again["run"] == run.id
    assert len(logged(config)) == 3
    dry = cli("backfill", "nightly", "--from", "2026-11-01", "--to", "2026-11-01T04:00",
              "-n").output
    assert dry.strip() == "2026-11-01T03:00:00+00:00  taken on already (started)"
    one = cli("backfill", "nightly", "--from", "2026-11-04T03:00", "--to", "2026-11-04T03:00")
    assert "nightly: 1 instant built, 0 taken on before" in one.output


def test_an_instant_run_due_took_is_not_backfilled(config: Path, storage: Storage) -> None:
    jc = JobControl.from_config(config, storage=storage)
    instant = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
    assert storage.claim_scheduled_run("nightly", instant, host="h", pid=1)
    report = backfill(jc, "nightly", datetime(2026, 11, 1, tzinfo=UTC),
                      datetime(2026, 11, 3, 4, tzinfo=UTC))
    assert [i for i, _ in report.built] == [datetime(2026, 11, 1, 3, tzinfo=UTC),
                                            datetime(2026, 11, 3, 3, tzinfo=UTC)]
    assert report.taken == [(instant, "claimed")]


def test_refusals(config: Path, storage: Storage) -> None:
    jc = JobControl.from_config(config, storage=storage)
    with pytest.raises(JobControlError, match="job 'plain' has no schedule"):
        backfill(jc, "plain", datetime(2026, 11, 1, tzinfo=UTC),
                 datetime(2026, 11, 2, tzinfo=UTC))
    with pytest.raises(JobControlError, match="is before --from"):
        backfill(jc, "nightly", datetime(2026, 11, 2, tzinfo=UTC),
                 datetime(2026, 11, 1, tzinfo=UTC))
    cli = Cli(config, storage)
    assert "has no schedule" in cli("backfill", "plain", "--from", "2026-11-01", "--to",
                                    "2026-11-02", code=2).output
    assert "not an ISO 8601 time" in cli("backfill", "nightly", "--from", "soon", "--to",
                                         "2026-11-02", code=2).output
    # a date "at UTC-5" is no time: Python would read 05:00 (and build another window)
    for when in ("2026-11-01-05:00", "2026-11-01+05:00", "2026-11-01x03:00"):
        assert "is not an ISO 8601 time" in cli("backfill", "nightly", "--from", when, "--to",
                                                "2026-11-02", code=2).output
    jc.pause("nightly", reason="vendor down")
    paused = cli("backfill", "nightly", "--from", "2026-11-01", "--to", "2026-11-02").output
    assert paused.strip().endswith("vendor down; not started (resume it, or backfill --force)")
    assert storage.list_builds() == []


def test_a_backfill_killed_mid_way_and_started_again_runs_each_instant_once(
        tmp_path: Path, storage: Storage) -> None:
    url = None if storage.url.startswith("sqlite") else storage.url  # SQLite: the project's
    project = Project(project_config(tmp_path / "project"), url)
    window = ("--from", "2026-11-01T03:00", "--to", "2026-11-05T03:00")
    process = project.start("backfill", "hangs", *window)
    pid = int(wait_for(project.config.parent / "started"))  # the third instant is running
    assert pid == process.pid  # inline: the build is the backfill's own process
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    until(lambda: not alive(pid), "the killed backfill to be gone")
    assert logged(project.config) == [f"2026-11-0{d}T03:00:00+00:00" for d in (1, 2, 3)]
    (project.config.parent / "started").unlink()
    code, out, err = project.run("backfill", "hangs", *window)
    # the killed build was its instant's one: not run again (recorded abandoned)
    assert code == 0, err
    assert "2 instants built, 3 taken on before" in out, out + err
    assert ("hangs: instant 2026-11-03T03:00:00+00:00 was taken on before: build #3 "
            "abandoned, not built again (jobcontrol build hangs --retry-of 3 builds it for "
            "that instant)") in err
    assert logged(project.config) == [f"2026-11-0{d}T03:00:00+00:00" for d in range(1, 6)]
    with open_storage(project.storage_url) as seen:
        [run] = seen.list_runs()
        builds = seen.run_builds([run.id])[run.id]
        assert run.trigger is RunTrigger.BACKFILL
        assert [b.definition["scheduled_for"][:10] for b in builds] == [
            f"2026-11-0{d}" for d in range(1, 6)]
        assert [b.state for b in builds] == [BuildState.SUCCESS] * 2 + [
            BuildState.ABANDONED] + [BuildState.SUCCESS] * 2


def test_sigterm_stops_a_backfill_and_the_same_command_goes_on(tmp_path: Path,
                                                               storage: Storage) -> None:
    url = None if storage.url.startswith("sqlite") else storage.url
    project = Project(project_config(tmp_path / "project"), url)
    window = ("--from", "2026-11-01T03:00", "--to", "2026-11-05T03:00")
    process = project.start("backfill", "hangs", *window)
    wait_for(project.config.parent / "started")  # the third instant is running
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, out + err
    assert "stopped: build #3 hangs was cancelled; the same command goes on" in err
    assert len(logged(project.config)) == 3  # no instant after the cancelled one
    (project.config.parent / "started").unlink()
    code, out, err = project.run("backfill", "hangs", *window, "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert [b["instant"][:10] for b in report["built"]] == ["2026-11-04", "2026-11-05"]
    assert report["resumed"] and report["stopped"] is None
    [unfinished] = report["unfinished"]
    assert unfinished["instant"] == "2026-11-03T03:00:00+00:00"
    assert (unfinished["build"]["id"], unfinished["build"]["state"]) == (3, "cancelled")
    assert logged(project.config) == [f"2026-11-0{d}T03:00:00+00:00" for d in range(1, 6)]
    with open_storage(project.storage_url) as seen:
        assert seen.get_build(3).state is BuildState.CANCELLED


def test_a_retry_of_a_backfilled_instant_is_for_that_instant(config: Path,
                                                             storage: Storage) -> None:
    """An instant's build that failed (or was cut off: abandoned, cancelled) is taken on:
    ``backfill`` never builds it again. ``build --retry-of`` does, for the same instant and
    interval (it read none: the job did another interval's work, or failed)."""
    cli = Cli(config, storage)
    (config.parent / "broken").touch()
    cli("backfill", "flaky", "--from", "2026-11-01T03:00", "--to", "2026-11-02T03:00",
        code=1)
    (config.parent / "broken").unlink()
    [run] = storage.list_runs()
    _, second = storage.run_builds([run.id])[run.id]
    assert second.state is BuildState.FAILED
    out = cli("build", "flaky", "--retry-of", str(second.id), "--format", "json").output
    [retry] = json.loads(out)
    assert (retry["state"], retry["retry_of"], retry["run"]) == ("success", second.id, run.id)
    assert json.loads(storage.get_build(retry["id"]).result.data) == {  # type: ignore[union-attr]
        "scheduled_for": "2026-11-02T03:00:00+00:00",
        "interval": ["2026-11-01T03:00:00+00:00", "2026-11-02T03:00:00+00:00"],
        "run": run.id}
    assert logged(config)[-1] == "2026-11-02T03:00:00+00:00"
    fields = [line.split(None, 2) for line in cli("show", str(retry["id"])).output
              .splitlines()]
    assert ["scheduled", "for", "2026-11-02T03:00:00+00:00"] in fields
    # the backfill again: the first instant still failed (said so), the second retried
    again = json.loads(cli("backfill", "flaky", "--from", "2026-11-01T03:00", "--to",
                           "2026-11-02T03:00", "--format", "json").output)
    assert [(u["instant"], u["build"]["state"]) for u in again["unfinished"]] == [
        ("2026-11-01T03:00:00+00:00", "failed")]


def test_a_shell_job_reads_its_instant_from_its_environment(config: Path,
                                                           storage: Storage) -> None:
    cli = Cli(config, storage)
    cli("backfill", "shell", "--from", "2026-11-01T03:00", "--to", "2026-11-02T03:00")
    jc = JobControl.from_config(config, storage=storage)
    assert [[r.message for r in jc.logs(b.id)] for b in storage.list_builds("shell")[::-1]] == [
        ["2026-10-31T03:00:00+00:00..2026-11-01T03:00:00+00:00"],
        ["2026-11-01T03:00:00+00:00..2026-11-02T03:00:00+00:00"]]
    [plain] = jc.build("shell")  # no schedule started it: neither is set
    assert [r.message for r in jc.logs(plain.id)] == [".."]
