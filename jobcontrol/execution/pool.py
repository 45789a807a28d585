"""``isolation: pool``: warm worker processes, each running many builds in turn.

A fresh process per build (``isolation: process``) pays for a fork, its copy-on-write page
faults and its teardown at every build. A :class:`WorkerPool` forks its workers once, from
the runner, as many as builds run at once (the run's ``-j``), and hands each build to an idle
one, as Celery's prefork pool does. The build itself runs as in a forked child, with the same
:class:`~.runner.ChildCapture`; the runner reads, records and enforces the timeout as for any
child (:class:`PoolChild` is a :class:`~.runner.ChildProcess`).

What a build costs besides its job is two hand-offs between processes and little else, so
each worker keeps, from its fork to its end:

* its *request socket*: the runner sends a build as one small pickle (the job's path and
  arguments, the build, and the runner's folder, environment and masker only where they
  changed since that worker's last build), nothing else: no descriptors;
* its *frame pipe*, on which the build's log records, progress and outcome come as from a
  forked child, and after them the worker's ``("end", rss, survivors)`` frame: the build is
  over, the processes it left in the worker's group are dead (so its output is all in the
  output pipes), the worker is tidy again and ready for the next build;
* its *output pipes*, the worker's fds 1 and 2 (what subprocesses and C code write).

* The worker leads its own process group, so a timeout or cancel signals the worker and
  every process its build started; the worker is then killed and replaced, never reused.
  A worker that dies during a build (``os._exit``, a segfault) fails that build alone.
* A build that leaves a process running outside the worker's group (a daemon in a session
  of its own) retires its worker: that process may hold the output pipes, which must not
  carry its lines into the next build's log. The runner closes its ends, as it does a
  forked build's.
* After each build the worker kills what the build left running in its group, restores what
  it can (see :mod:`.pool_worker`), and tells the runner its resident memory in the end
  frame; the runner retires it after ``max_builds`` builds or past ``max_memory`` bytes.
* The workers hold the read end of a pipe only the runner writes to: when the runner dies
  (``kill -9`` too), a thread in each worker sees the end of it and kills the worker's whole
  process group (the build's subprocesses with it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any

from jobcontrol.execution import wire
from jobcontrol.execution.frames import Frame
from jobcontrol.execution.linux import load_prctl
from jobcontrol.execution.pool_worker import WorkerPipes, worker_main
from jobcontrol.execution.runner import ChildProcess
from jobcontrol.models import Build
from jobcontrol.secrets import Masker

logger = logging.getLogger(__name__)


class PoolError(Exception):
    """A build could not be handed to a worker (arguments that do not pickle, a worker that
    could not start); nothing of it ran."""


class Worker:
    """The runner's handle on one warm worker: its pid, its request socket, the read ends
    of its frame and output pipes, and what it was last sent."""

    def __init__(self, pid: int, conn: socket.socket, frame_fd: int, out_fd: int,
                 err_fd: int) -> None:
        self.pid = pid
        self.conn = conn
        self.frame_fd, self.out_fd, self.err_fd = frame_fd, out_fd, err_fd
        for fd in (frame_fd, out_fd, err_fd):
            os.set_blocking(fd, False)  # the executor reads what is there, never waits
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):  # older kernels: the executor polls
                self.pidfd = os.pidfd_open(pid)
        #: builds it has run to their end
        self.builds = 0
        #: the working folder, environment and masker it was last sent (None: as forked)
        self._cwd: str | None = None
        self._environ: dict[Any, Any] | None = None
        self._masker: Masker | None = None

    def fds(self) -> tuple[int, ...]:
        """The runner's descriptors of this worker (a worker forked later closes them)."""
        return (self.conn.fileno(), self.frame_fd, self.out_fd, self.err_fd)

    def exited(self) -> bool:
        """True once the process has exited (it stays a zombie until :meth:`end`)."""
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def send(self, job: bytes, build: Build, result_mode: str, masker: Masker | None
             ) -> None:
        """Send a build; the runner's folder, environment and masker come with it where
        they changed since this worker's last build (each build pickling them again cost
        more than its job)."""
        cwd = os.getcwd()
        data = getattr(os.environ, "_data", None)  # compared without a copy, mostly
        changed = data != self._environ if isinstance(data, dict) else True
        environ = dict(os.environ) if changed else None
        send_masker = masker is not self._masker
        wire.send(self.conn, (job, build, result_mode, send_masker, masker if send_masker
                              else None, None if cwd == self._cwd else cwd, environ))
        self._cwd = cwd
        self._masker = masker
        if changed:
            self._environ = dict(data) if isinstance(data, dict) else None

    def end(self) -> int:
        """Kill the worker and its process group, collect it; its wait status."""
        # the worker itself too: one just forked may not lead its group yet (a claim that
        # named it was refused, say), and waitpid would wait for it forever
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(self.pid, signal.SIGKILL)
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = signal.SIGKILL
        self.conn.close()
        for fd in (self.frame_fd, self.out_fd, self.err_fd, self.pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pidfd = None
        return status


@dataclass
class PoolChild(ChildProcess):
    """One build in a worker, as the executor handles a forked child: the worker's pipes
    (read from this build's start to its end frame), its pid (its process group), and what
    :meth:`reap` does with the worker after."""

    worker: Worker | None = None
    pool: WorkerPool | None = None
    #: whether the runner signalled it (a timeout, a cancel): the worker is not reused
    signalled: bool = False
    #: the worker's end frame, once it came (see the module docstring)
    end: Frame | None = None

    def signal_group(self, signum: int) -> None:
        self.signalled = True
        super().signal_group(signum)

    def build_over(self, frame: Frame) -> None:
        self.end = frame

    def exited(self) -> bool:
        """True once the worker said the build is over, or died."""
        assert self.worker is not None
        return self.end is not None or self.worker.exited()

    def reap(self, need_status: bool = True) -> int:
        """The worker goes back to the pool (0), or is killed and collected (its wait
        status) where it was signalled, died, left a process outside its group, or ended
        the build without its outcome (``need_status``). The pipes are the worker's: they
        stay open with it."""
        assert self.worker is not None and self.pool is not None
        reusable = self.end is not None and not (self.signalled or need_status)
        return self.pool.finished(self.worker, self.end if reusable else None)


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
        #: the worker the next :meth:`start` takes, named by :meth:`next_worker`
        self._next: Worker | None = None
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
        while True:  # an idle worker found dead (killed by someone) gives way to the next
            worker, self._next = self._next or self._idle_worker(), None
            try:
                worker.send(job, build, result_mode, masker)
            except OSError as exc:
                self._end(worker)
                if worker.builds == 0:  # a fresh worker: do not loop
                    raise PoolError(f"a pool worker could not take the build: {exc}") from exc
                continue
            break
        # the executor wakes on the worker's pidfd (where it dies) and on its pipes: the
        # end frame on the frame pipe says the build is over
        return PoolChild(worker.pid, worker.frame_fd, worker.out_fd, worker.err_fd,
                         worker.pidfd, worker=worker, pool=self)

    def next_worker(self) -> int:
        """The pid (and process group) of the worker the next :meth:`start` takes, so
        that the build's claim can record it (forks one where none is idle)."""
        if self._next is None:
            self._next = self._idle_worker()
        return self._next.pid

    def _idle_worker(self) -> Worker:
        while self.idle:
            worker = self.idle.pop()
            if not worker.exited():
                return worker
            self._end(worker)
        return self._fork()

    def finished(self, worker: Worker, end: Frame | None) -> int:
        """A build in ``worker`` ended: with the worker's end frame, the worker goes back
        to the idle ones (0) unless it is past its limits or its build left a process
        outside its group; else (and without one) it is ended (its wait status)."""
        if end is not None:
            _, rss, survivors = end
            worker.builds += 1
            if not survivors and worker.builds < self.max_builds and (
                    self.max_memory is None or rss <= self.max_memory):
                self.idle.append(worker)
                return 0
            logger.debug("pool worker %s retired after %s builds (%s bytes resident%s)",
                         worker.pid, worker.builds, rss,
                         ", a process left outside its group" if survivors else "")
        return self._end(worker)

    def _end(self, worker: Worker) -> int:
        self.workers.pop(worker.pid, None)
        if worker in self.idle:
            self.idle.remove(worker)
        if worker is self._next:
            self._next = None
        return worker.end()

    def close(self) -> None:
        """End every worker (each with its process group)."""
        for worker in list(self.workers.values()):
            worker.end()
        self.workers.clear()
        self.idle.clear()
        self._next = None
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
        (frame_r, frame_w), (out_r, out_w), (err_r, err_w) = (os.pipe() for _ in range(3))
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            ours.close()
            theirs.close()
            for fd in (frame_r, frame_w, out_r, out_w, err_r, err_w):
                os.close(fd)
            raise PoolError(f"cannot start a pool worker: {exc}") from exc
        if pid == 0:  # pragma: no cover - the worker (coverage cannot follow os._exit)
            code = 0
            try:
                ours.close()
                for fd in (lifeline_w, frame_r, out_r, err_r):  # the runner's alone
                    os.close(fd)  # (the lifeline's end is the runner's death)
                for other in self.workers.values():
                    other.conn.close()
                    for fd in other.fds()[1:]:
                        os.close(fd)
                worker_main(theirs, lifeline_r, parent, WorkerPipes(frame_w, out_w, err_w))
            except BaseException:
                code = 70  # the worker itself broke: a build in it fails with this code
            finally:
                os._exit(code)
        theirs.close()
        for fd in (frame_w, out_w, err_w):
            os.close(fd)
        worker = Worker(pid, ours, frame_r, out_r, err_r)
        self.workers[pid] = worker
        return worker
