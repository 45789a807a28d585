"""Finding builds whose runner vanished or hung, and marking them ``abandoned`` with a reason.

A ``running`` build is abandoned when, on this host (and in its boot and PID namespace:
containers with the same hostname each count pids from 1), its runner's process is gone (or
its pid now belongs to a process started after the build: pids are reused), or, from any host,
its heartbeat is older than the limit, whether its runner is alive or not. Its ``finished``
is its last heartbeat (when it was last known alive). On the runner's host, what is left of
the build is then killed: a hung runner, and the job's process group. Any command that reads
or claims builds calls :func:`reap` first, so a crashed or hung runner never holds its job
forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cache

from jobcontrol.execution.identity import is_this_namespace, same_namespace, worker_pid
from jobcontrol.models import Build, BuildState, WorkerRecord
from jobcontrol.storage.base import Storage
from jobcontrol.timeutil import format_duration

#: slack when comparing a process's start with its build's start (clock ticks, rounding)
_START_SLACK = timedelta(seconds=1)


@cache
def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as handle:
            for line in handle:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def process_start_time(pid: int) -> datetime | None:
    """When process ``pid`` started (Linux ``/proc``), or None where that is unknown."""
    boot = _boot_time()
    if boot is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[19])  # field 22 of the whole line: starttime, in clock ticks
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), timezone.utc)


def process_alive(pid: int) -> bool:
    """True if a process with this pid exists (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _runner_here(build: Build) -> bool | None:
    """Whether this running build's runner (its pid, on this host) is still the process
    that claimed it: False when the process is gone or its pid now belongs to a process
    started after the build (pids are reused), None where that cannot be told."""
    assert build.pid
    if not process_alive(build.pid):
        return False
    started = process_start_time(build.pid)
    if started is None or build.started is None:
        return None
    return started <= build.started + _START_SLACK


def abandon_reason(build: Build, *, host: str, now: datetime,
                   heartbeat_timeout: float) -> str | None:
    """Why this running build is abandoned, or None if its runner may still be alive.

    On its own host a runner that is gone is found at once; from any host (its own too)
    a build whose heartbeat is older than ``heartbeat_timeout`` is abandoned: a stopped or
    deadlocked runner is as dead as a killed one (on its host, :func:`abandon` kills it).
    A process never abandons its own builds: it knows it is alive. A build of a worker
    in another boot or PID namespace (another container with the same hostname) is never
    judged by its pid: only by heartbeats."""
    here = _here(build, host)
    if here and build.pid == os.getpid():
        return None
    beat = build.heartbeat or build.started
    since = "" if beat is None else (
        f" (last heartbeat {_clock(beat)}, noticed {_clock(now)})")
    # killed, or it gave up on a storage that refused the outcome: its output says which
    gone = f"process {build.pid}@{host} ended without recording an outcome"
    if here and not process_alive(build.pid):  # type: ignore[arg-type]
        return f"{gone}{since}"
    if here and _runner_here(build) is False:
        return f"{gone} (its pid was reused)"
    if beat is None:
        return None
    age = (now - beat).total_seconds()
    if age <= heartbeat_timeout:
        return None
    reason = (f"no heartbeat since {_clock(beat)} (noticed {_clock(now)}, "
              f"{format_duration(age)} later)")
    if here and _runner_here(build):
        return f"{reason}; runner {build.pid}@{host} killed"
    return f"{reason} (runner {build.pid}@{build.host})"


def _here(build: Build, host: str) -> bool:
    """Whether ``build``'s pid means a process of this machine and PID namespace."""
    if build.host != host or not build.pid:
        return False
    if build.pid_namespace is not None and not is_this_namespace(build.pid_namespace):
        return False
    return build.worker_id is None or same_namespace(build.worker_id)



def _clock(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%H:%M:%S")


def abandon(storage: Storage, build: Build, *, host: str, now: datetime,
            heartbeat_timeout: float) -> Build | None:
    """Mark ``build`` (read as running) abandoned if :func:`abandon_reason` says so, with
    its last heartbeat as its end; on this host, kill what is left of it (see
    :func:`end_processes`). Returns the build as recorded (its runner may have finished it
    meanwhile: that outcome stands), or None while its runner may be alive."""
    reason = abandon_reason(build, host=host, now=now, heartbeat_timeout=heartbeat_timeout)
    if reason is None:
        return None
    ended = build.heartbeat or build.started or now
    record = storage.finish_build(build.id, BuildState.ABANDONED, reason=reason,
                                  finished=ended)
    if record.state is BuildState.ABANDONED and _here(build, host):
        end_processes(build)
    return record


def end_processes(build: Build) -> None:
    """SIGKILL what is left on this host of a build marked abandoned: its job's process
    group (the job's subprocesses, which outlive a runner killed with ``kill -9``), and
    its runner if that still runs (stopped or hung: SIGKILL, which a stopped process
    cannot hold off). Never a process that is not the build's: a runner whose pid now
    belongs to a later process is left alone, and so is a group whose number now leads
    another process's group (see :func:`_group_is_the_builds`)."""
    if build.pgid and _group_is_the_builds(build):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(build.pgid, signal.SIGKILL)
    if build.pid and build.pid != os.getpid() and _runner_here(build):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(build.pid, signal.SIGKILL)


def _group_is_the_builds(build: Build) -> bool:
    """Whether the process group ``build.pgid`` is still the build's job's. A number that
    leads a group is not given to a new process while any member of the group lives, so
    with no process of that pid the group (if any) is the job's subprocesses; a process of
    that pid is the job's only while it is the child of the runner."""
    assert build.pgid
    if not process_alive(build.pgid):
        return True
    parent = _parent(build.pgid)
    return parent is not None and parent == build.pid


def _parent(pid: int) -> int | None:
    """The parent of process ``pid`` (Linux ``/proc``), or None where that is unknown."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def worker_lost(worker: WorkerRecord, *, host: str, now: datetime,
                heartbeat_timeout: float) -> str | None:
    """Why ``worker`` is gone, or None while it may be alive: its heartbeat older than
    ``heartbeat_timeout``, or (judged only from its own machine and PID namespace) its
    main process gone."""
    if worker.host == host and same_namespace(worker.id):
        pid = worker_pid(worker.id)
        if pid is not None and pid != os.getpid() and (
                not process_alive(pid) or _started_after(pid, worker.started)):
            return f"worker {worker.id} lost: its process {pid}@{host} ended"
    age = (now - worker.heartbeat).total_seconds()
    if age > heartbeat_timeout:
        return (f"worker {worker.id} lost: no heartbeat since {_clock(worker.heartbeat)} "
                f"(noticed {_clock(now)}, {format_duration(age)} later)")
    return None


def _started_after(pid: int, moment: datetime) -> bool:
    started = process_start_time(pid)
    return started is not None and started > moment + _START_SLACK


def reap_workers(storage: Storage, running: Sequence[Build], *, host: str, now: datetime,
                 heartbeat_timeout: float) -> tuple[list[Build], set[int]]:
    """Abandon together every running build of a lost worker (see :func:`worker_lost`), and
    forget the worker; returns the builds abandoned, and the ids of running builds whose
    worker is alive (judged by heartbeat only, never by a pid of another namespace)."""
    lost: dict[str, str] = {}
    alive: set[str] = set()
    for worker in storage.list_workers():
        reason = worker_lost(worker, host=host, now=now, heartbeat_timeout=heartbeat_timeout)
        if reason is None:
            alive.add(worker.id)
        else:
            lost[worker.id] = reason
    reaped = []
    for build in running:
        if build.worker_id in lost:
            record = storage.finish_build(build.id, BuildState.ABANDONED,
                                          reason=lost[build.worker_id],
                                          finished=build.heartbeat or build.started or now)
            if record.state is BuildState.ABANDONED:
                reaped.append(record)
                if _here(build, host):
                    end_processes(build)
    for worker_id in lost:
        storage.forget_worker(worker_id)
    return reaped, {b.id for b in running if b.worker_id in alive}


def reap(storage: Storage, *, host: str, heartbeat_timeout: float,
         now: datetime | None = None, workers: bool = False) -> list[Build]:
    """Mark every abandoned running build (see :func:`abandon`); returns them as recorded.
    Builds run by workers are judged by their worker first (:func:`reap_workers`), with
    ``workers`` (a worker's sweep) even when none runs a build: lost workers are forgotten."""
    running: Sequence[Build] = storage.list_builds(states=[BuildState.RUNNING])
    if not running and not workers:
        return []
    now = now or storage.now()
    reaped: list[Build] = []
    if workers or any(build.worker_id for build in running):
        reaped, _ = reap_workers(storage, running, host=host, now=now,
                                 heartbeat_timeout=heartbeat_timeout)
        done = {build.id for build in reaped}
        running = [build for build in running if build.id not in done]
    for build in running:
        record = abandon(storage, build, host=host, now=now,
                         heartbeat_timeout=heartbeat_timeout)
        if record is not None and record.state is BuildState.ABANDONED:
            reaped.append(record)
    return reaped
