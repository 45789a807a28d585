"""Real workers (``jobcontrol worker``) behave like local builds, through Redis and
RabbitMQ: a build a worker runs notifies as the job's ``notify`` says (once); a worker whose
config defines a job otherwise gives its builds back for one whose config matches (and says
so in its log), and a build no worker can take ends failed by ``queued_timeout``, naming
why."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcontrol import BuildState, JobControl
from jobcontrol.models import Build
from tests.processes import ROOT, stop_groups
from tests.support import make_project
from tests.test_celery import broker, wait_until

S = BuildState
__all__ = ["broker"]

NOTIFY_CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: "{queue}"}}
jobs:
  - id: flip
    function: jobfuncs.fails_when
    args: [down.flag]
    notify: {{on: [failure, recovery], targets: [{{call: jobfuncs.notify_collect}}]}}
"""

#: ``tag`` differs between the submitter's config and a stale worker's
SHARED_CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: "{queue}", queued_timeout: 2s}}
runner: {{heartbeat: 0.5s}}
jobs:
  - {{id: noop, function: jobfuncs.noop, kwargs: {{tag: {tag}}}, isolation: inline,
      concurrency: 100}}
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@contextlib.contextmanager
def _worker(config: Path, storage: str, log: Path, concurrency: int = 1
            ) -> Iterator[subprocess.Popen[str]]:
    """``jobcontrol worker`` of ``config``, ready; stopped (SIGTERM: what runs, ends) after."""
    argv = [sys.executable, "-m", "jobcontrol", "-c", str(config), "--storage", storage,
            "worker", "--concurrency", str(concurrency)]
    with log.open("w") as out:
        process = subprocess.Popen(argv, cwd=config.parent, env=_env(), text=True,
                                   stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until(f"{log.name} ready", lambda: (
            process.poll() is None or pytest.fail(log.read_text()))
            and " ready." in log.read_text())
        yield process
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        stop_groups([process])


def _ended(jc: JobControl, builds: list[Build]) -> list[Build]:
    now = [jc.get_build(build.id) for build in builds]
    return now if all(build.state.finished for build in now) else []


def _queue() -> str:
    return f"jctest-{uuid.uuid4().hex[:8]}"


def test_a_build_run_by_a_worker_notifies_once(broker: str, pg_url: str,
                                                tmp_path: Path) -> None:
    config = make_project(tmp_path / "project", NOTIFY_CONFIG.format(
        broker=broker, queue=_queue()))
    flag, notified = config.parent / "down.flag", config.parent / "notified.jsonl"
    flag.touch()
    ids = []
    with JobControl.from_config(config, pg_url) as jc, \
            _worker(config, pg_url, tmp_path / "worker.log", concurrency=2) as worker:
        for fails in (True, False, False, True):  # failure, recovery, no news, failure
            if not fails:
                flag.unlink(missing_ok=True)
            else:
                flag.touch()
            [build] = jc.submit("flip")
            ids.append(build.id)
            [ended] = wait_until(f"build {build.id} ends", lambda b=build: _ended(jc, [b]))
            assert ended.state is (S.FAILED if fails else S.SUCCESS)
        _stop(worker)  # every notification it would send is sent by now
    events = [json.loads(line) for line in notified.read_text().splitlines()]
    assert [(e["event"], e["build"]["id"]) for e in events] == [
        ("failure", ids[0]), ("recovery", ids[1]), ("failure", ids[3])]
    assert events[1]["previous"]["id"] == ids[0]


def _current_and_stale(broker: str, tmp_path: Path) -> tuple[Path, Path]:
    """Two configs on one queue whose job ``noop`` differs: a deploy half done."""
    queue = _queue()
    current, stale = (make_project(tmp_path / tag, SHARED_CONFIG.format(
        broker=broker, queue=queue, tag=tag)) for tag in ("current", "stale"))
    return current, stale


def test_a_stale_config_worker_gives_builds_back_to_a_matching_one(
        broker: str, pg_url: str, tmp_path: Path) -> None:
    config, stale = _current_and_stale(broker, tmp_path)
    stale_log = tmp_path / "stale.log"
    with JobControl.from_config(config, pg_url) as jc, _worker(stale, pg_url, stale_log):
        builds = [jc.submit("noop")[0] for _ in range(6)]
        # the stale worker alone: every build stays queued, given back
        wait_until("the stale worker gives every build back", lambda: all(
            f"build #{b.id} noop: given back" in stale_log.read_text() for b in builds))
        assert {jc.get_build(b.id).state for b in builds} == {S.QUEUED}
        with _worker(config, pg_url, tmp_path / "current.log") as current:
            ended = wait_until("every build ends", lambda: _ended(jc, builds))
    assert {b.state for b in ended} == {S.SUCCESS}
    assert all((b.worker_id or "").startswith(f"jobcontrol.{current.pid}.") for b in ended)
    text = stale_log.read_text()
    assert "given back for a worker whose config matches" in text
    assert "defines job 'noop' differently" in text


def test_a_build_no_worker_can_take_fails_naming_the_mismatch(
        broker: str, pg_url: str, tmp_path: Path) -> None:
    config, stale = _current_and_stale(broker, tmp_path)
    with JobControl.from_config(config, pg_url) as jc, \
            _worker(stale, pg_url, tmp_path / "stale.log"):
        [build] = jc.submit("noop")
        [failed] = wait_until("queued_timeout fails it", lambda: _ended(jc, [build]))
    assert failed.state is S.FAILED and failed.started is None
    assert failed.reason is not None
    assert failed.reason.startswith("never taken by a worker: queued since ")
    assert "; given back by worker jobcontrol." in failed.reason
    assert "defines job 'noop' differently" in failed.reason
