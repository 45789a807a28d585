"""``isolation: pool``: warm worker processes, each running many builds in turn.

A fresh process per build (``isolation: process``) pays for a fork, its copy-on-write page
faults and its teardown at every build. A :class:`WorkerPool` forks its workers once, from
the runner, as many as builds run at once (the run's ``-j``), and hands each build to an idle
one, as Celery's prefork pool does. The build itself runs as in a forked child: the runner
makes its three pipes (frames, stdout, stderr), sends their write ends with the request
(``SCM_RIGHTS``, over :mod:`.wire`), and the worker runs it with the same
:class:`~.runner.ChildCapture` a forked child uses. The runner reads, records and enforces the
timeout as for any child (:class:`PoolChild` is a :class:`~.runner.ChildProcess`).

* The worker leads its own process group, so a timeout or cancel signals the worker and
  every process its build started; the worker is then killed and replaced, never reused.
  A worker that dies during a build (``os._exit``, a segfault) fails that build alone.
* After each build the worker kills what the build left running in its group, restores what
  it can (see :mod:`.pool_worker`), and tells the runner its resident memory; the runner
  retires it after ``max_builds`` builds or past ``max_memory`` bytes.
* The workers hold the read end of a pipe only the runner writes to: when the runner dies
  (``kill -9`` too), a thread in each worker sees the end of it and kills the worker's whole
  process group (the build's subprocesses with it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any

from jobcontrol.execution import wire
from jobcontrol.execution.linux import load_prctl
from jobcontrol.execution.pool_worker import worker_main
from jobcontrol.execution.runner import ChildProcess
from jobcontrol.models import Build
from jobcontrol.secrets import Masker

logger = logging.getLogger(__name__)

#: seconds a worker has, once its build's pipes are closed, to tidy up and say it is ready
#: for the next build; past that it is killed (the build's outcome is recorded all the same)
IDLE_WAIT = 5.0


class PoolError(Exception):
    """A build could not be handed to a worker (arguments that do not pickle, a worker that
    could not start); nothing of it ran."""


class Worker:
    """The runner's handle on one warm worker: its pid, its socket, what it was last sent."""

    def __init__(self, pid: int, conn: socket.socket) -> None:
        self.pid = pid
        self.conn = conn
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):  # older kernels: the executor polls
                self.pidfd = os.pidfd_open(pid)
        #: builds it has run to their end
        self.builds = 0
        #: the working folder and environment it was last sent (None: as forked)
        self._cwd: str | None = None
        self._environ: dict[Any, Any] | None = None

    def exited(self) -> bool:
        """True once the process has exited (it stays a zombie until :meth:`end`)."""
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def send(self, job: bytes, child: bytes, fds: tuple[int, int, int]) -> None:
        """Send a build; the runner's folder and environment come with it where they
        changed since this worker's last build."""
        cwd = os.getcwd()
        data = getattr(os.environ, "_data", None)  # compared without a copy, mostly
        changed = data != self._environ if isinstance(data, dict) else True
        environ = dict(os.environ) if changed else None
        wire.send(self.conn, (job, child, None if cwd == self._cwd else cwd, environ), fds)
        self._cwd = cwd
        if changed:
            self._environ = dict(data) if isinstance(data, dict) else None

    def wait_ready(self, seconds: float) -> int | None:
        """The worker's resident memory once it says it is ready for the next build; -1
        if it died (or said something else), None if it did not say so in ``seconds``."""
        waiting: list[Any] = [self.conn] if self.pidfd is None else [self.conn, self.pidfd]
        if not select.select(waiting, [], [], seconds)[0]:
            return None
        try:
            message, _ = wire.recv(self.conn)
            return int(message[1])
        except (OSError, EOFError, pickle.PickleError, IndexError, TypeError, ValueError):
            return -1

    def end(self) -> int:
        """Kill the worker and its process group, collect it; its wait status."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = signal.SIGKILL
        self.conn.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        return status


@dataclass
class PoolChild(ChildProcess):
    """One build in a worker, as the executor handles a forked child: its pipes, the
    worker's pid (its process group), and what :meth:`reap` does with the worker after."""

    worker: Worker | None = None
    pool: WorkerPool | None = None
    #: whether the runner signalled it (a timeout, a cancel): the worker is not reused
    signalled: bool = False

    def signal_group(self, signum: int) -> None:
        self.signalled = True
        super().signal_group(signum)

    def exited(self) -> bool:
        """True once the worker is done with the build (it said so) or dead."""
        assert self.worker is not None
        return bool(select.select([self.worker.conn], [], [], 0)[0]) or self.worker.exited()

    def reap(self, need_status: bool = True) -> int:
        """Close the build's pipes; the worker goes back to the pool (0), or is killed and
        collected (its wait status) where it was signalled, died, or ended the build
        without its outcome (``need_status``)."""
        assert self.worker is not None and self.pool is not None
        for fd in (self.frame_fd, self.out_fd, self.err_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        return self.pool.finished(self.worker, reuse=not (self.signalled or need_status))


class WorkerPool:
    """Warm workers forked from this process; see the module docstring.

    :meth:`start` hands a build to an idle worker (forking one where none is idle: the pool
    grows to the number of builds run at once); :meth:`close` ends every worker.
    """

    def __init__(self, *, max_builds: int = 100, max_memory: int | None = None) -> None:
        self.max_builds = max_builds
        self.max_memory = max_memory
        self.workers: dict[int, Worker] = {}
        self.idle: list[Worker] = []
        #: workers whose build ended, tidying up before they say they are ready
        self.returning: list[Worker] = []
        #: the pipe whose end the workers watch (see the module docstring)
        self._lifeline: tuple[int, int] | None = None

    def start(self, function: str, args: tuple[Any, ...], kwargs: dict[str, Any],
              build: Build, result_mode: str, masker: Masker | None) -> PoolChild:
        """Run ``function`` (its path) in a worker; returns at once. :class:`PoolError`
        where it cannot (nothing ran)."""
        try:
            job = pickle.dumps((function, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # anything pickling a user's value can raise
            raise PoolError(f"cannot send the job's arguments to a worker: {exc}") from exc
        child = pickle.dumps((build, result_mode, masker), protocol=pickle.HIGHEST_PROTOCOL)
        while True:  # an idle worker found dead (killed by someone) gives way to the next
            worker = self._idle_worker()
            pipes = [os.pipe() for _ in range(3)]
            try:
                worker.send(job, child, (pipes[0][1], pipes[1][1], pipes[2][1]))
            except OSError as exc:
                for r, _ in pipes:
                    os.close(r)
                self._end(worker)
                if worker.builds == 0:  # a fresh worker: do not loop
                    raise PoolError(f"a pool worker could not take the build: {exc}") from exc
                continue
            finally:
                for _, w in pipes:
                    os.close(w)
            break
        for r, _ in pipes:
            os.set_blocking(r, False)
        # the executor wakes on its "pidfd" and asks exited(): here the worker's socket, on
        # which the worker says it is done (a daemon the build started may keep its
        # stdout open), or ends (EOF where it died)
        return PoolChild(worker.pid, pipes[0][0], pipes[1][0], pipes[2][0],
                         worker.conn.fileno(), worker=worker, pool=self)

    def _idle_worker(self) -> Worker:
        for worker in list(self.returning):  # those that are ready by now
            self._take_back(worker, 0.0)
        if not self.idle and self.returning:  # rather than fork one more: wait for one
            self._take_back(self.returning[0], IDLE_WAIT)
        while self.idle:
            worker = self.idle.pop()
            if not worker.exited():
                return worker
            self._end(worker)
        return self._fork()

    def finished(self, worker: Worker, reuse: bool) -> int:
        """A build in ``worker`` ended: the worker tidies up while the runner records the
        outcome, and is taken back before the next build (0); or it is ended (its wait
        status)."""
        if reuse:
            self.returning.append(worker)
            return 0
        return self._end(worker)

    def _take_back(self, worker: Worker, seconds: float) -> None:
        """Take a returning worker back where it says it is ready within ``seconds`` (ended
        instead past its limits, or if it died); left returning if not ready yet."""
        rss = worker.wait_ready(seconds)
        if rss is None and seconds == 0.0:
            return
        self.returning.remove(worker)
        if rss is not None and rss >= 0:
            worker.builds += 1
            if worker.builds < self.max_builds and (
                    self.max_memory is None or rss <= self.max_memory):
                self.idle.append(worker)
                return
            logger.debug("pool worker %s retired after %s builds (%s bytes resident)",
                         worker.pid, worker.builds, rss)
        self._end(worker)

    def _end(self, worker: Worker) -> int:
        self.workers.pop(worker.pid, None)
        if worker in self.idle:
            self.idle.remove(worker)
        return worker.end()

    def close(self) -> None:
        """End every worker (each with its process group)."""
        for worker in list(self.workers.values()):
            worker.end()
        self.workers.clear()
        self.idle.clear()
        self.returning.clear()
        if self._lifeline is not None:
            for fd in self._lifeline:
                os.close(fd)
            self._lifeline = None

    def _fork(self) -> Worker:
        load_prctl()
        if self._lifeline is None:
            self._lifeline = os.pipe()
        lifeline_r, lifeline_w = self._lifeline
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            ours.close()
            theirs.close()
            raise PoolError(f"cannot start a pool worker: {exc}") from exc
        if pid == 0:  # pragma: no cover - the worker (coverage cannot follow os._exit)
            code = 0
            try:
                ours.close()
                os.close(lifeline_w)  # the runner's alone: its end is the runner's death
                for other in self.workers.values():
                    other.conn.close()
                worker_main(theirs, lifeline_r, parent)
            except BaseException:
                code = 70  # the worker itself broke: a build in it fails with this code
            finally:
                os._exit(code)
        theirs.close()
        worker = Worker(pid, ours)
        self.workers[pid] = worker
        return worker
