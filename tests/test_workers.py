"""Workers known by identity (every backend): their rows and heartbeats, the identity a
build records, and the reaper judging a worker's builds by that identity: a lost worker's
builds abandoned together; a build of another PID namespace never judged by its pid (two
identities simulated here; tests/test_workers_celery.py runs real ones under ``unshare``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jobcontrol import JobControl
from jobcontrol.execution import identity
from jobcontrol.models import HOSTNAME, BuildState, WorkerRecord
from jobcontrol.reaper import reap, reap_workers
from jobcontrol.storage import Storage
from tests.support import Cli, make_project
from tests.test_storage_contract import claim, enqueue, start

S = BuildState
#: a pid no process has here (pid_max is at most 2**22)
NO_SUCH_PID = 2**22 + 5


def _worker(storage: Storage, worker_id: str, pid: int = 1) -> WorkerRecord:
    now = storage.now()
    worker = WorkerRecord(worker_id, HOSTNAME, pid, now, now, ("jobcontrol", "gpu"))
    storage.beat_worker(worker)
    return worker


def _running(storage: Storage, worker_id: str | None, pid: int = NO_SUCH_PID) -> int:
    build = enqueue(storage)
    assert build is not None
    started = start(storage, build.id, host=HOSTNAME, pid=pid, worker_id=worker_id,
                    concurrency=100)
    assert started is not None and started.worker_id == worker_id
    return build.id


def test_workers_are_recorded_beat_and_forgotten(storage: Storage) -> None:
    first = _worker(storage, "a~1~boot~ns")
    _worker(storage, "b~2~boot~ns")
    [a, b] = storage.list_workers()
    assert (a.id, a.host, a.pid, a.queues) == (first.id, HOSTNAME, 1, ("jobcontrol", "gpu"))
    before = a.heartbeat
    storage.beat_worker(first)
    while storage.list_workers()[0].heartbeat == before:
        storage.beat_worker(first)  # the clock moves on
    assert storage.list_workers()[0].started == a.started  # a beat keeps its start
    storage.forget_worker(first.id)
    storage.forget_worker("unknown")
    assert [w.id for w in storage.list_workers()] == [b.id]


def test_a_build_of_another_pid_namespace_is_never_judged_by_its_pid(
        storage: Storage) -> None:
    # same hostname, a pid that does not exist here: another container's worker
    other = _worker(storage, f"jobcontrol.7@{HOSTNAME}~7~other-boot~4026531999").id
    theirs = _running(storage, other)
    mine_gone = _running(storage, None)  # a local build whose process is gone: reaped
    reaped = reap(storage, host=HOSTNAME, heartbeat_timeout=60)
    assert [b.id for b in reaped] == [mine_gone]
    assert storage.get_build(theirs).state is S.RUNNING
    # the same pid under this namespace's identity is judged by it, and found gone
    here = identity.worker_identity(f"jobcontrol.1@{HOSTNAME}", os.getpid())
    _worker(storage, here)
    ours = _running(storage, here)
    [found] = reap(storage, host=HOSTNAME, heartbeat_timeout=60)
    assert found.id == ours and found.reason is not None
    assert found.reason.startswith(f"process {NO_SUCH_PID}@")


def test_a_lost_workers_builds_are_abandoned_together(storage: Storage) -> None:
    lost = _worker(storage, "w~9~other-boot~1")
    builds = [_running(storage, lost.id) for _ in range(3)]
    while (storage.now() - storage.list_workers()[0].heartbeat).total_seconds() < 0.5:
        pass  # its heartbeat grows old
    alive = _worker(storage, "v~8~other-boot~1")
    kept = _running(storage, alive.id)
    running = storage.list_builds(states=[S.RUNNING])
    reaped, _ = reap_workers(storage, running, host=HOSTNAME, now=storage.now(),
                             heartbeat_timeout=0.4)
    assert sorted(b.id for b in reaped) == builds  # together, by the worker's heartbeat
    assert all(b.reason and b.reason.startswith(f"worker {lost.id} lost: no heartbeat since ")
               for b in reaped)
    assert storage.get_build(kept).state is S.RUNNING
    assert [w.id for w in storage.list_workers()] == [alive.id]


def test_a_worker_of_this_namespace_whose_process_ended_is_lost_at_once(
        storage: Storage) -> None:
    dead = identity.worker_identity(f"jobcontrol.1@{HOSTNAME}", NO_SUCH_PID)
    _worker(storage, dead, NO_SUCH_PID)
    build = _running(storage, dead, pid=os.getpid())  # its build's process alive here
    [reaped] = reap(storage, host=HOSTNAME, heartbeat_timeout=3600)
    assert reaped.id == build and reaped.reason == (
        f"worker {dead} lost: its process {NO_SUCH_PID}@{HOSTNAME} ended")


def test_identity_names_node_pid_boot_and_namespace() -> None:
    made = identity.worker_identity("jobcontrol.5@box", 5)
    node, pid, boot, pidns = made.split("~")
    assert (node, pid) == ("jobcontrol.5@box", "5") and boot and pidns.isdigit()
    assert identity.same_namespace(made) and identity.worker_pid(made) == 5
    assert not identity.same_namespace(f"jobcontrol.5@box~5~{boot}~1")
    assert not identity.same_namespace("malformed")


def test_the_workers_command(tmp_path: Path, storage: Storage) -> None:
    config = make_project(tmp_path, "jobs:\n  - {id: job, function: jobfuncs.noop}\n")
    jc = JobControl.from_config(config, storage=storage)
    cli = Cli(config, storage)
    assert cli("workers").output.strip() == "no workers"
    worker = _worker(storage, "jobcontrol.3@box~3~boot~1")
    build_id = _running(storage, worker.id)
    storage.heartbeat([build_id])
    [row] = json.loads(cli("workers", "--format", "json").output)
    assert row["id"] == worker.id and row["queues"] == ["jobcontrol", "gpu"]
    assert row["builds"] == [{"id": build_id, "job": "job"}] and row["last_seen"]
    out = cli("workers").output
    assert worker.id in out and f"#{build_id} job" in out
    assert jc.get_build(build_id).state is S.RUNNING


def test_a_build_records_the_pid_namespace_of_its_runner(storage: Storage) -> None:
    here = identity.namespace_id()
    claimed = claim(storage, pid_namespace=here)
    assert claimed.pid_namespace == here
    assert storage.get_build(claimed.id).pid_namespace == here
    queued = enqueue(storage)
    assert queued is not None
    started = start(storage, queued.id, concurrency=2, pid_namespace=here)
    assert started is not None and started.pid_namespace == here
    assert storage.get_build(queued.id).pid_namespace == here
    for build in (claimed, started):  # the finish returns the build as stored, whole
        finished = storage.finish_build(build.id, S.SUCCESS)
        assert finished == storage.get_build(build.id)
        assert finished.pid_namespace == here


def test_a_local_build_of_another_pid_namespace_is_never_judged_by_its_pid(
        storage: Storage) -> None:
    # same hostname, a pid that does not exist here: another container's `jobcontrol build`
    theirs = claim(storage, "theirs", host=HOSTNAME, pid=NO_SUCH_PID,
                   pid_namespace="other-boot~4026531999")
    unknown = claim(storage, "unknown", host=HOSTNAME, pid=NO_SUCH_PID, pid_namespace="?~?")
    mine = claim(storage, "mine", host=HOSTNAME, pid=NO_SUCH_PID,
                 pid_namespace=identity.namespace_id())
    older = claim(storage, "older", host=HOSTNAME, pid=NO_SUCH_PID)  # recorded before
    reaped = reap(storage, host=HOSTNAME, heartbeat_timeout=60)
    assert sorted(b.id for b in reaped) == [mine.id, older.id]
    assert {storage.get_build(b.id).state for b in (theirs, unknown)} == {S.RUNNING}
