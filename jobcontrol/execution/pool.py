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
  it can (see :class:`_Baseline`), and tells the runner its resident memory; the runner
  retires it after ``max_builds`` builds or past ``max_memory`` bytes.
* The workers hold the read end of a pipe only the runner writes to: when the runner dies
  (``kill -9`` too), a thread in each worker sees the end of it and kills the worker's whole
  process group (the build's subprocesses with it).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import pickle
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobcontrol.execution import wire
from jobcontrol.execution.runner import ChildCapture, ChildProcess, become_subreaper, load_prctl
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
            self._environ = _environ_data()

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
        return PoolChild(worker.pid, pipes[0][0], pipes[1][0], pipes[2][0], worker.pidfd,
                         worker=worker, pool=self)

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
                _worker_main(theirs, lifeline_r, parent)
            except BaseException:
                code = 70  # the worker itself broke: a build in it fails with this code
            finally:
                os._exit(code)
        theirs.close()
        worker = Worker(pid, ours)
        self.workers[pid] = worker
        return worker


# -- the worker ----------------------------------------------------------------------------


def _worker_main(conn: socket.socket, lifeline: int, parent: int) -> None:
    """A worker's life: builds in turn until the runner closes the socket or dies."""
    capture = ChildCapture()
    capture.isolate()  # its own process group: the runner signals the build through it
    threading.Thread(target=_watch_runner, args=(lifeline,), daemon=True,
                     name="jobcontrol-pool-lifeline").start()
    if os.getppid() != parent:  # the runner died before the watch began
        os._exit(0)
    become_subreaper()
    if faulthandler.is_enabled():  # the runner's: a crash's traceback goes to the build's log
        faulthandler.enable(2)
    _quiet_std_fds()
    baseline = _Baseline()
    memory = _ResidentMemory()
    functions: dict[str, Callable[..., Any]] = {}
    worker = os.getpid()
    while True:
        try:
            (job, child, cwd, environ), fds = wire.recv(conn)
        except EOFError:
            return
        baseline.follow(cwd, environ)
        frame_w, out_w, err_w = fds
        os.set_inheritable(frame_w, False)  # the job's subprocesses write stdout, not frames
        build, result_mode, masker = pickle.loads(child)
        func, args, kwargs = _load(job, functions)
        capture.run(frame_w, out_w, err_w, func, args, kwargs, build, result_mode, masker)
        if os.getpid() != worker:  # a process the job forked, returning from it: not a worker
            os._exit(0)
        _quiet_std_fds()
        baseline.restore()
        _end_leftovers()
        wire.send(conn, ("ready", memory.read()))


def _watch_runner(lifeline: int) -> None:
    """In a thread of the worker: at the end of the lifeline (the runner died, however),
    kill the worker's process group: the worker and what its build started."""
    with contextlib.suppress(OSError):
        os.read(lifeline, 1)
    os.killpg(0, signal.SIGKILL)


def _load(job: bytes, functions: dict[str, Callable[..., Any]]
          ) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """The job's callable and arguments; a callable that raises what failed, where they
    cannot be loaded (the build fails with it, as a job's exception)."""
    from jobcontrol.importing import import_callable

    try:
        function, args, kwargs = pickle.loads(job)
        if function not in functions:
            functions[function] = import_callable(function)
        return functions[function], args, kwargs
    except Exception as exc:  # the build's failure, not the worker's
        error = exc

        def failed() -> None:
            raise error

        return failed, (), {}


def _quiet_std_fds() -> None:
    """/dev/null on fds 1 and 2 between builds: a stray write goes nowhere, and a build's
    pipes received next never land on them."""
    devnull = os.open(os.devnull, os.O_RDWR)  # 1 or 2 itself, where the build closed them
    for fd in (1, 2):
        if fd != devnull:
            os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)


class _Baseline:
    """What a worker restores after each build: its working folder and environment (the
    runner's, as last sent), signal handlers and pending alarms, the umask, ``sys.path``,
    and the root logger's handlers and level (and ``logging.disable``). Module globals,
    open files, threads and other loggers' settings are the job's to leave as found."""

    def __init__(self) -> None:
        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        self.environ_data = _environ_data()
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.path = list(sys.path)
        # the named signals (the real-time ones between SIGRTMIN and SIGRTMAX are left)
        self.signals = {signum: handler for signum in signal.Signals
                        if (handler := _handler(signum)) is not None}
        root = logging.getLogger()
        self.root_handlers = list(root.handlers)
        self.root_level = root.level
        self.disable = logging.root.manager.disable

    def follow(self, cwd: str | None, environ: dict[str, str] | None) -> None:
        """Take the runner's folder and environment, sent with a build where they changed."""
        if cwd is not None:
            self.cwd = cwd
            with contextlib.suppress(OSError):  # gone: the build runs where the worker is
                os.chdir(cwd)
        if environ is not None:
            self.environ = environ
            os.environ.clear()
            os.environ.update(environ)
            self.environ_data = _environ_data()

    def restore(self) -> None:
        if signal.getitimer(signal.ITIMER_REAL)[0]:  # a build's alarm must not fire later
            signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self.signals.items():
            if _handler(signum) is not handler:
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(signum, handler)
        with contextlib.suppress(OSError):
            if os.getcwd() != self.cwd:
                os.chdir(self.cwd)
        if getattr(os.environ, "_data", None) != self.environ_data:
            os.environ.clear()
            os.environ.update(self.environ)
        os.umask(self.umask)
        if sys.path != self.path:
            sys.path[:] = self.path
        root = logging.getLogger()
        if root.handlers != self.root_handlers:
            root.handlers[:] = self.root_handlers
        # each of these clears every logger's cache of enabled levels: only where changed
        if root.level != self.root_level:
            root.setLevel(self.root_level)
        if logging.root.manager.disable != self.disable:
            logging.disable(self.disable)


def _environ_data() -> dict[Any, Any]:
    """``os.environ`` as CPython keeps it (encoded: compared far quicker than decoded)."""
    data = getattr(os.environ, "_data", None)
    return dict(data) if isinstance(data, dict) else dict(os.environ)


def _handler(signum: int) -> Any:
    try:
        return signal.getsignal(signum)
    except (OSError, ValueError):
        return None


def _end_leftovers() -> None:
    """Kill what the build left running in the worker's process group, as the end of a
    forked build's process kills its group, and collect the worker's exited children.

    The worker is a subreaper (Linux), so the orphans of its build's processes become its
    children: those in its group are killed until none is left. A process the build moved
    to a group of its own outlives the build, as it outlives a forked build."""
    try:  # one call where the build left no process (no child: no descendant either)
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return
    group = os.getpgrp()
    for _ in range(100):  # each round, the orphans of the killed come to the worker
        members = [pid for pid in _children() if _group_of(pid) == group]
        if not members:
            break
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in members:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    while True:  # the zombies of children no one waited for
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _children() -> list[int]:
    """The worker's live children (Linux ``/proc``; elsewhere none are found)."""
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as handle:
                pids += map(int, handle.read().split())
    except (OSError, ValueError):
        pass
    return pids


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


class _ResidentMemory:
    """The worker's resident memory in bytes (Linux ``/proc``, its file kept open; elsewhere
    its peak)."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.fd: int | None = None
        with contextlib.suppress(OSError):
            self.fd = os.open("/proc/self/statm", os.O_RDONLY)

    def read(self) -> int:
        if self.fd is not None:
            try:
                return int(os.pread(self.fd, 200, 0).split()[1]) * self.page
            except (OSError, ValueError, IndexError):  # closed by a build, say: once more
                self.fd = None
                with contextlib.suppress(OSError):
                    self.fd = os.open("/proc/self/statm", os.O_RDONLY)
                    return int(os.pread(self.fd, 200, 0).split()[1]) * self.page
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
