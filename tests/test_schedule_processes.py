"""Schedules with real processes: run-due racing itself, two schedulers on PostgreSQL, and
notifications received by a local HTTP server."""

from __future__ import annotations

import itertools
import json
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from jobcontrol.storage import open_storage
from tests.processes import Project

RACE_CONFIG = """\
jobs:
  - id: tick
    function: jobfuncs.noop
    isolation: inline
    schedule: "* * * * *"
    schedule_options: {catchup: all, misfire_grace: 1m}
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def race_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project.on(request, tmp_path, RACE_CONFIG)



def test_two_run_due_racing_never_double_a_run(race_project: Project) -> None:
    base = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    rounds = 50
    for minute in range(rounds):
        at = (base + timedelta(minutes=minute, seconds=20)).isoformat()
        racers = [race_project.start("run-due", "--at", at, "--format", "json")
                  for _ in range(2)]
        reports = []
        for racer in racers:
            out, err = racer.communicate(timeout=60)
            assert racer.returncode == 0, err
            reports.append(json.loads(out))
        started = sum(len(report["started"]) for report in reports)
        assert started >= 1  # this minute's instant (and the first call's grace window)
    storage = open_storage(race_project.storage_url)
    try:
        runs = storage.scheduled_runs("tick")
        builds = storage.list_builds("tick")
    finally:
        storage.close()
    # every instant from the first grace window to the last call: once each, one build each
    instants = sorted(run.scheduled_for for run in runs)
    assert instants == [base + timedelta(minutes=m) for m in range(rounds)]
    assert all(run.outcome == "started" for run in runs)
    assert len(builds) == len(runs)
    assert sorted(run.build_id for run in runs) == sorted(build.id for build in builds)


SCHEDULER_CONFIG = """\
jobs:
  - id: fast
    function: jobfuncs.noop
    isolation: inline
    schedule: "* * * * * *"
    schedule_options: {catchup: all, misfire_grace: 1s}
"""
#: how many instants of the every-second schedule the two schedulers run before they stop
SCHEDULER_INSTANTS = 10


@pytest.fixture(params=["sqlite", "postgresql"])
def scheduler_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project.on(request, tmp_path, SCHEDULER_CONFIG)


def test_two_schedulers_on_one_storage_run_each_instant_once(
        scheduler_project: Project) -> None:
    schedulers = [scheduler_project.start("scheduler") for _ in range(2)]
    storage = open_storage(scheduler_project.storage_url)
    try:
        # both try to claim every instant; which one wins each is a race (one may win them
        # all): what must hold is that each instant is taken on once, by either
        def enough_ran() -> bool:
            runs = [run for run in storage.scheduled_runs("fast") if run.outcome != "baseline"]
            return sum(run.outcome == "started" for run in runs) >= SCHEDULER_INSTANTS

        deadline = time.monotonic() + 60
        while not enough_ran():
            assert time.monotonic() < deadline, "the schedulers did not run the instants"
            assert all(scheduler.poll() is None for scheduler in schedulers)
            time.sleep(0.1)
    finally:
        for scheduler in schedulers:
            scheduler.send_signal(signal.SIGTERM)
        outputs = [scheduler.communicate(timeout=30) for scheduler in schedulers]
    try:
        for scheduler, (out, err) in zip(schedulers, outputs, strict=True):
            assert scheduler.returncode == 0, err
            assert out.startswith("scheduler: 1 scheduled job, at most 4 builds at once; "
                                  "stop with SIGTERM or Ctrl-C\n")
            assert out.endswith("scheduler: stopped\n")
        runs = sorted(storage.scheduled_runs("fast"), key=lambda run: run.scheduled_for)
        builds = storage.list_builds("fast")
    finally:
        storage.close()
    # no instant ran twice: one build per instant started (or skipped: overlap), and none
    # left running
    built = [run.build_id for run in runs if run.outcome in ("started", "overlap")]
    assert sorted(built) == sorted(build.id for build in builds)
    assert all(build.state.finished for build in builds)
    # consecutive instants, none lost between the first and the last, each with its end
    # (the last ones not built if the stop came first)
    times = [run.scheduled_for for run in runs if run.outcome != "baseline"]
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)}
    assert gaps == {1.0}
    assert {run.outcome for run in runs} <= {"baseline", "started", "overlap", "not_built"}


class _Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:  # the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    received: ClassVar[list[dict]] = []
    handler = type("Hooks", (_Hooks,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["sqlite", "postgresql"])
def notify_project(request: pytest.FixtureRequest, tmp_path: Path,
                   webhook: tuple[str, list[dict]]) -> Project:
    config = f"""\
jobs:
  - id: flappy
    function: jobfuncs.fails_when
    args: [broken.flag]
    notify:
      on: [failure, recovery]
      targets:
        - webhook: {webhook[0]}
        - call: jobfuncs.notify_raises
        - webhook: http://127.0.0.1:9/nobody-listens
"""
    return Project.on(request, tmp_path, config)


def test_webhook_gets_failure_and_recovery_once_each(
        notify_project: Project, webhook: tuple[str, list[dict]]) -> None:
    flag = notify_project.config.parent / "broken.flag"
    outcomes, warnings = [], []
    for broken in (False, True, True, True, False, False):
        if broken:
            flag.write_text("x")
        else:
            flag.unlink(missing_ok=True)
        code, _, err = notify_project.run("build", "flappy")
        outcomes.append(code)
        warnings.append([line for line in err.splitlines() if line.startswith("warning:")])
    # the failing targets are warned about, only when there was news to send
    assert [len(lines) for lines in warnings] == [0, 2, 0, 0, 2, 0]
    assert warnings[1][0] == ("warning: notification failure of 'flappy' to call "
                              "jobfuncs.notify_raises failed: RuntimeError: pager down "
                              "(failure)")
    assert warnings[4][1].startswith("warning: notification recovery of 'flappy' to webhook "
                                     "http://127.0.0.1:9/nobody-listens failed: URLError")
    assert outcomes == [0, 1, 1, 1, 0, 0]  # failing targets never fail a build
    received = webhook[1]
    assert [(event["event"], event["build"]["id"]) for event in received] == [
        ("failure", 2), ("recovery", 5)]
    failure, recovery = received
    assert failure["job"] == "flappy"
    assert failure["build"]["state"] == "failed"
    assert failure["build"]["exception"]["message"] == "broken.flag is set"
    assert failure["previous"]["id"] == 1 and failure["previous"]["state"] == "success"
    assert recovery["previous"]["id"] == 4
