"""Builds on real Celery workers (``jobcontrol worker``, 2 processes), through Redis and
through RabbitMQ, recorded in PostgreSQL: many builds, dependencies, failures, cancels, and
a worker process killed mid-build.

Each broker runs when its variable names it (``.ci/run`` sets both):
``$JOBCONTROL_TEST_REDIS`` (e.g. ``redis://127.0.0.1:6379/5``) and ``$JOBCONTROL_TEST_AMQP``
(e.g. ``amqp://guest:guest@127.0.0.1:5672//``). Every test uses a queue of its own and a
PostgreSQL database of its own, and nothing is flushed: test runs sharing a broker (or a
Redis database) do not disturb each other.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest

from jobcontrol import BuildState, JobControl
from jobcontrol.models import Build
from tests.processes import ROOT, alive, wait_for
from tests.support import isolation_specific, make_project

S = BuildState
BROKERS = {
    "redis": ("JOBCONTROL_TEST_REDIS", "redis://127.0.0.1:6379/5"),
    "amqp": ("JOBCONTROL_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//"),
}

CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: "{queue}"}}
runner: {{heartbeat: 0.2s, heartbeat_timeout: 2s, kill_grace: 1s}}
jobs:
  - {{id: record, function: remotejobs.record_build, args: ["{dsn}"], concurrency: 50}}
  - {{id: a, function: jobfuncs.make, args: [a]}}
  - {{id: p, function: jobfuncs.make, args: [p], params: {{value: {{type: int, default: 1}}}}}}
  - id: b
    function: jobfuncs.make
    dependencies: [a]
    kwargs: {{tag: b, value: !retval a}}
  - id: c
    function: jobfuncs.make
    dependencies: [b]
    kwargs: {{tag: c, value: !retval b}}
  - {{id: bad, function: jobfuncs.fails}}
  - {{id: pooled, function: os.getpid, isolation: pool, concurrency: 50}}
  - {{id: tick, function: jobfuncs.make, args: [tick], schedule: "* * * * *"}}
  - {{id: after_bad, function: jobfuncs.make, args: [x], dependencies: [bad]}}
  - {{id: napper, function: jobfuncs.sleeper, kwargs: {{seconds: 60, marker: napper.pid}}}}
  - id: victim
    function: remotejobs.exclusive
    kwargs: {{dsn: "{dsn}", marker: victim.pid}}
    retries: 1
"""


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    default = 6379 if parts.scheme.startswith("redis") else 5672
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default),
                                      timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(params=sorted(BROKERS), scope="module")
def broker(request: pytest.FixtureRequest) -> str:
    """A broker URL; skips, saying why, without Celery or without the broker."""
    pytest.importorskip("celery", reason="the Celery tests need pip install 'jobcontrol[celery]'")
    variable, example = BROKERS[request.param]
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"{request.param} tests need ${variable}, e.g. {variable}={example} "
                    f"(.ci/run sets it)")
    if not _reachable(url):
        pytest.skip(f"${variable}={url}: no broker answers there")
    return url


@dataclass
class Cluster:
    """A project whose builds go to the workers of one broker, recorded in PostgreSQL."""

    config: Path
    storage: str
    dsn: str

    def args(self, *args: str) -> list[str]:
        return ["-c", str(self.config), "--storage", self.storage, *args]

    def run(self, *args: str, timeout: float = 90) -> tuple[int, str, str]:
        process = self.start(*args)
        out, err = process.communicate(timeout=timeout)
        return process.returncode, out, err

    def start(self, *args: str, **popen: Any) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
        env["PYTHONPATH"] = str(ROOT)
        return subprocess.Popen([sys.executable, "-m", "jobcontrol", *self.args(*args)],
                                cwd=self.config.parent, env=env, text=True,
                                stdout=popen.pop("stdout", subprocess.PIPE),
                                stderr=popen.pop("stderr", subprocess.PIPE), **popen)

    def control(self) -> JobControl:
        return JobControl.from_config(self.config, self.storage)

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(query)
            rows = cur.fetchall() if cur.description else []
        conn.close()
        return rows


@pytest.fixture
def cluster(broker: str, pg_url: str, tmp_path: Path) -> Cluster:
    queue = f"jctest-{uuid.uuid4().hex[:8]}"
    config = make_project(tmp_path / "project",
                          CONFIG.format(broker=broker, queue=queue, dsn=pg_url))
    shutil.copy(Path(__file__).parent / "remotejobs.py", config.parent / "remotejobs.py")
    made = Cluster(config, pg_url, pg_url)
    made.sql("CREATE TABLE runs (build_id integer PRIMARY KEY, pid integer NOT NULL)")
    return made


@pytest.fixture
def worker(cluster: Cluster, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """``jobcontrol worker --concurrency 2``, ready; stopped (and its processes killed) after."""
    log = (tmp_path / "worker.log").open("w")
    process = cluster.start("worker", "--concurrency", "2", stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        text = ""
        while " ready." not in text:
            text = (tmp_path / "worker.log").read_text()
            assert process.poll() is None, f"the worker exited:\n{text}"
            assert time.monotonic() < deadline, f"the worker did not start:\n{text}"
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)  # warm shutdown: what runs, ends
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        log.close()


def wait_until(what: str, check: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def wait_ready(logs: list[Path], processes: list[subprocess.Popen[str]]) -> None:
    """Wait until each worker says it is ready in its log; a worker that ended fails the
    test with its log."""
    for log, process in zip(logs, processes, strict=True):
        wait_until(f"{log.name} ready", lambda log=log, process=process: (
            process.poll() is None or pytest.fail(log.read_text()))
            and " ready." in log.read_text())


def handled(log: Path, outcome: str) -> bool:
    """Whether the worker logging to ``log`` has ended a build task with an outcome that
    starts with ``outcome`` (what :meth:`RemoteWorker.handle` did with a delivery)."""
    return any(" succeeded in " in line and f": '{outcome}" in line
               for line in log.read_text().splitlines())


def ended(jc: JobControl, builds: list[Build]) -> list[Build] | None:
    now = [jc.get_build(b.id) for b in builds]
    return now if all(b.state.finished for b in now) else None


@pytest.mark.usefixtures("worker")
def test_200_queued_builds_run_once_each(cluster: Cluster) -> None:
    with cluster.control() as jc:
        builds = [jc.submit("record")[0] for _ in range(200)]
        for build in builds:  # the broker delivers each id twice
            jc.sender(build.id, build.queue or "")
        wait_until("200 builds", lambda: len(jc.storage.list_builds(
            "record", states=[S.SUCCESS, S.FAILED])) == 200, seconds=120)
        final = {b.id: b for b in jc.builds("record")}
    assert {b.state for b in final.values()} == {S.SUCCESS}
    assert sorted(final) == [b.id for b in builds]
    rows = cluster.sql("SELECT build_id FROM runs ORDER BY build_id")
    assert [row[0] for row in rows] == sorted(final)  # 200 rows: no build ran twice
    assert all(final[i].retval == i for i in final)
    assert {b.pid for b in final.values()} and len({b.pid for b in final.values()}) <= 4


@pytest.mark.usefixtures("worker")
def test_pool_builds_on_a_worker_reuse_its_warm_workers(cluster: Cluster) -> None:
    with cluster.control() as jc:
        builds = [jc.submit("pooled")[0] for _ in range(6)]
        done = wait_until("6 pool builds", lambda: ended(jc, builds))
    assert {b.state for b in done} == {S.SUCCESS}, [b.reason for b in done]
    pids = [b.retval for b in done]
    assert all(b.pgid == b.retval for b in done)  # the job ran in the build's pool worker
    assert not {b.pid for b in done} & set(pids)  # not in the Celery worker process
    assert len(set(pids)) <= 2 < len(pids)  # one warm worker per Celery process, reused


@pytest.mark.usefixtures("worker")
def test_a_deps_chain_with_retvals_then_a_failure(cluster: Cluster) -> None:
    code, out, err = cluster.run("build", "c", "--deps", "--async", "--wait",
                                 "--format", "json")
    assert code == 0, err
    a, b, c = json.loads(out)
    assert [x["job"] for x in (a, b, c)] == ["a", "b", "c"]
    assert {x["state"] for x in (a, b, c)} == {"success"}
    with cluster.control() as jc:
        shown = jc.get_build(c["id"])
        assert shown.retval == {"tag": "c", "got": {"tag": "b", "got": {
            "tag": "a", "got": None, "build": a["id"]}, "build": b["id"]}, "build": c["id"]}
        assert shown.dependency_builds == {"b": b["id"]}
        assert shown.queue and shown.queue.startswith("jctest-")

    code, out, err = cluster.run("build", "after_bad", "--deps", "--async", "--wait")
    assert code == 1, err
    assert "queued on jctest-" in out
    assert "build #4 bad: failed" in out
    assert "ValueError: bad row 12" in out or "about to fail" in out
    assert "build #5 after_bad: cancelled" in out
    assert "(dependency bad failed (build 4))" in out


@pytest.mark.usefixtures("worker")
def test_cancel_a_queued_and_a_running_build(cluster: Cluster, tmp_path: Path) -> None:
    with cluster.control() as jc:
        [running] = jc.submit("napper")
        pid = int(wait_for(cluster.config.parent / "napper.pid", seconds=30))
        [queued] = jc.submit("napper")  # waits: the job runs one build at a time
        wait_until("a worker to put it off", lambda: handled(tmp_path / "worker.log",
                                                             "waiting for a slot'"))
        assert jc.get_build(queued.id).state is S.QUEUED
    code, out, err = cluster.run("cancel", str(queued.id), "--reason", "not needed")
    assert code == 0, err
    assert f"build #{queued.id} napper: cancelled (cancelled by " in out
    code, out, err = cluster.run("cancel", str(running.id), "--wait", "--format", "json")
    assert code == 0, err
    [stopped] = json.loads(out)
    assert stopped["state"] == "cancelled"
    assert stopped["reason"].startswith("cancelled by ")
    wait_until("the job process to end", lambda: not alive(pid), seconds=10)
    with cluster.control() as jc:
        assert jc.get_build(queued.id).started is None  # it never started
        assert jc.get_build(queued.id).state is S.CANCELLED


@isolation_specific("process", "pool", why="an inline job runs in the Celery worker process, "
                    "which has no process of the job's to wait for")
def test_kill_9_of_a_worker_process_mid_build(cluster: Cluster, worker: subprocess.Popen[str],
                                              tmp_path: Path) -> None:
    with cluster.control() as jc:
        [first] = jc.submit("victim")
        job_pid = int(wait_for(cluster.config.parent / "victim.pid", seconds=30))
        (cluster.config.parent / "victim.pid").unlink()
        # the job runs in a process of its own (forked for it, or a pool worker) whose
        # parent is one of the Celery worker's processes
        pool_pid = _parent_of(job_pid)
        assert pool_pid != worker.pid and _parent_of(pool_pid) == worker.pid
        os.kill(pool_pid, signal.SIGKILL)

        abandoned = wait_until("the build abandoned", lambda: (
            b if (b := jc.get_build(first.id)).state.finished else None), seconds=30)
        assert abandoned.state is S.ABANDONED
        assert abandoned.reason.startswith(
            f"process {pool_pid}@{socket.gethostname()} ended without recording an outcome "
            f"(last heartbeat ")
        assert abandoned.finished == abandoned.heartbeat
        # the job dies with its worker process (a moment later on a busy machine)
        wait_until("the job process to end", lambda: not alive(job_pid), seconds=10)
        retry = wait_until("the retry", lambda: jc.storage.get_retry(first.id))
        [retry] = wait_until("the retry to end", lambda: ended(jc, [retry]), seconds=60)
        assert retry.state is S.SUCCESS, retry.reason  # it got the lock: no overlap
        assert retry.retry_of == first.id
        # the message of the killed process's build, delivered again, found it ended
        wait_until("the redelivery", lambda: handled(tmp_path / "worker.log", "already "))
        assert [b.id for b in jc.builds("victim")] == [retry.id, first.id]
    rows = cluster.sql("SELECT build_id FROM runs ORDER BY build_id")
    assert rows == [(first.id,), (retry.id,)]  # the redelivered message ran nothing


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_a_worker_refuses_a_storage_other_machines_cannot_share(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    code, _out, err = cluster.run("--storage", url, "worker", timeout=30)
    assert code == 2
    assert "cannot be shared with workers on other machines: use PostgreSQL" in err
    assert "--single-host" in err


@pytest.mark.usefixtures("worker")
def test_run_due_and_the_web_queue_builds_for_the_workers(cluster: Cluster) -> None:
    code, out, err = cluster.run("run-due", "--format", "json")
    assert code == 0, err
    [started] = json.loads(out)["started"]
    assert started["job"] == "tick"
    assert started["build"]["state"] == "queued"  # sent, not run here
    jc = cluster.control()
    [tick] = wait_until("the due build to end", lambda: ended(jc, [jc.get_build(
        started["build"]["id"])]))
    assert tick.state is S.SUCCESS
    assert tick.host != "" and tick.queue is not None
    assert jc.storage.scheduled_runs("tick")[0].build_id == tick.id

    from jobcontrol.web import create_app

    client = create_app(jc).test_client()
    token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    response = client.post("/api/v1/jobs/a/launch", headers={"X-CSRFToken": token})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["message"].startswith("queued for the workers: #")
    [built] = wait_until("the web's build to end",
                         lambda: ended(jc, [jc.get_build(body["build"]["id"])]))
    assert (built.job_id, built.state) == ("a", S.SUCCESS)
    # each is a run: the scheduled instant's and the API launch's
    assert jc.storage.get_run(tick.run_id).trigger.value == "schedule"  # type: ignore[arg-type]
    assert jc.storage.get_run(built.run_id).trigger.value == "api"  # type: ignore[arg-type]


@pytest.mark.usefixtures("worker")
def test_an_async_build_with_parameters_is_a_run_the_worker_passes_them_in(
        cluster: Cluster) -> None:
    code, out, err = cluster.run("build", "p", "--param", "value=7", "--async", "--wait",
                                 "--format", "json")
    assert code == 0, err
    [made] = json.loads(out)
    jc = cluster.control()
    build = jc.get_build(made["id"])
    assert build.params == {"value": 7} and build.result is not None
    assert json.loads(build.result.data)["got"] == 7  # passed in by the worker
    run = jc.get_run(made["run"])
    assert run.run.trigger.value == "cli" and run.run.params == {"p": {"value": 7}}
    assert [b.id for b in run.builds] == [build.id]
