"""Queued builds as people see them and act on them, without a broker (a recording
sender): ``status`` (its line and JSON), the web jobs page and API, ``requeue``, and a
lost build that no longer holds its job for a schedule's overlap. Every backend."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobcontrol import BuildState, JobControl
from jobcontrol.errors import BuildStateError
from jobcontrol.execution.queued import lost_builds
from jobcontrol.storage import Storage
from jobcontrol.web import create_app
from tests.support import Cli, make_project

CONFIG = """\
executor: {{type: celery, broker: "redis://127.0.0.1:1/0", queued_timeout: {timeout}}}
jobs:
  - {{id: tick, function: jobfuncs.noop, schedule: "* * * * *"}}
  - {{id: gpu, function: jobfuncs.noop, queue: gpu}}
"""


def _cli(jc: JobControl, *args: str) -> str:
    assert jc.config.path is not None
    return Cli(Path(jc.config.path), jc.storage)(*args).output


class _Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    def __call__(self, build_id: int, queue: str, **kwargs: Any) -> None:
        self.sent.append((build_id, queue))


def _project(tmp_path: Path, storage: Storage, timeout: str = "1h") -> tuple[JobControl, _Sender]:
    jc = JobControl.from_config(make_project(tmp_path, CONFIG.format(timeout=timeout)),
                                storage=storage)
    sender = _Sender()
    jc._sender = sender
    return jc, sender


def test_requeue_re_sends_queued_builds_and_refuses_others(tmp_path: Path,
                                                           storage: Storage) -> None:
    jc, sender = _project(tmp_path, storage)
    [build] = jc.submit("gpu")
    [done] = jc.requeue([build.id], by="ann@a")
    assert sender.sent == [(build.id, "gpu"), (build.id, "gpu")]
    assert done.state is BuildState.QUEUED and done.reason is not None
    assert done.reason.startswith("re-sent by ann@a at ")
    jc.cancel(build.id)
    with pytest.raises(BuildStateError, match=f"build {build.id} is cancelled, not queued"):
        jc.requeue([build.id])
    assert len(sender.sent) == 2


def test_status_and_the_web_show_queue_depth_and_the_oldest(tmp_path: Path,
                                                            storage: Storage) -> None:
    jc, _ = _project(tmp_path, storage)
    first = jc.submit("gpu")[0]
    jc.submit("gpu")
    jc.submit("tick")
    rows = {row["job"]: row for row in json.loads(
        _cli(jc, "status", "--format", "json"))}
    assert len(rows["gpu"]["queued"]) == 2 and rows["gpu"]["queued"][0] == first.id
    assert rows["gpu"]["oldest_queued"] == first.created.isoformat()  # type: ignore[union-attr]
    out = _cli(jc, "status")
    assert "queued: gpu 2 (oldest " in out and ", jobcontrol 1 (oldest " in out
    client = create_app(jc).test_client()
    assert "queued: gpu 2 (oldest " in client.get("/").get_data(as_text=True)
    api = {row["job"]: row for row in client.get("/api/v1/jobs").get_json()}
    assert api["gpu"]["queued"] == rows["gpu"]["queued"]


def test_no_queued_line_when_nothing_is_queued(tmp_path: Path, storage: Storage) -> None:
    jc, _ = _project(tmp_path, storage)
    assert "queued:" not in _cli(jc, "status")


@pytest.mark.parametrize(("timeout", "overlap"), [("1h", True), ("0.001s", False)])
def test_a_lost_queued_build_does_not_hold_its_job_for_a_schedule(
        tmp_path: Path, storage: Storage, timeout: str, overlap: bool) -> None:
    jc, sender = _project(tmp_path, storage, timeout)
    [queued] = jc.submit("tick")
    if not overlap:  # the clock past its queued_timeout (a millisecond)
        while not lost_builds(jc.storage, jc.config.jobs, 0.001, jc.storage.now()):
            pass
    report = jc.run_due(now=jc.storage.now() - timedelta(minutes=10))
    assert bool(report.overlaps) is overlap
    if overlap:
        [(_, _, skipped)] = report.overlaps
        assert skipped.reason is not None and skipped.reason.endswith(
            f"#{queued.id} still running")
    else:
        assert [build.job_id for _, _, build in report.started] == ["tick"]
        assert len(sender.sent) == 2
