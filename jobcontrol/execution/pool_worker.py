"""A pool worker's side (see :mod:`jobcontrol.execution.pool`): its loop, its pipes, and
what it does between two builds (kill what the build left running, restore what it changed,
measure its memory)."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module (see _handler)
import contextlib
import faulthandler
import logging
import os
import pickle
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from jobcontrol.execution import wire
from jobcontrol.execution.linux import become_subreaper
from jobcontrol.execution.runner import ChildCapture
from jobcontrol.secrets import Masker


class WorkerPipes:
    """A worker's ends of its frame and output pipes, kept from its fork to its end (see
    :mod:`jobcontrol.execution.pool`): fds 1 and 2 are the output pipes, put back before
    each build where the build before closed or replaced them."""

    def __init__(self, frame: int, out: int, err: int) -> None:
        self.frame = frame
        # the job's subprocesses inherit fds 1 and 2, never these spares or the frames
        for fd in (frame, out, err):
            os.set_inheritable(fd, False)
        self._std = ((out, 1), (err, 2))
        self._ids = {fd: _file_id(fd) for fd in (out, err)}
        for spare, std in self._std:
            os.dup2(spare, std)

    def restore(self) -> None:
        """fds 1 and 2 on the output pipes again (a ``fstat`` each, where nothing changed)."""
        for spare, std in self._std:
            if _file_id(std) != self._ids[spare]:
                os.dup2(spare, std)


def _file_id(fd: int) -> tuple[int, int] | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def worker_main(conn: socket.socket, lifeline: int, parent: int, pipes: WorkerPipes) -> None:
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
    baseline = _Baseline()
    memory = _ResidentMemory()
    functions: dict[str, Callable[..., Any]] = {}
    masker: Masker | None = None
    worker = os.getpid()
    while True:
        try:
            job, build, result_mode, new_masker, masker_sent, cwd, environ = wire.recv(conn)
        except EOFError:
            return
        if new_masker:  # sent where it changed since the build before
            masker = masker_sent
        baseline.follow(cwd, environ)
        func, args, kwargs = _load(job, functions)
        done = capture.run_warm(pipes.frame, func, args, kwargs, build, result_mode, masker)
        if os.getpid() != worker:  # a process the job forked, returning from it: not a worker
            os._exit(0)
        survivors = _end_leftovers()
        pipes.restore()
        baseline.restore()
        # the build's output is all in the pipes now (its processes are dead): its outcome
        # and the end go together, one wake-up of the runner, which records the build and
        # may send the next one
        capture.emit.last(done, ("end", memory.read(), survivors))


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
        self.signals = {int(signum): handler for signum in signal.Signals
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
    # ``_signal``'s, not ``signal``'s: the same handler without an enum made of it (about
    # 30 signals are looked at after every build)
    try:
        return _signal.getsignal(signum)
    except (OSError, ValueError):
        return None


def _end_leftovers() -> bool:
    """Kill what the build left running in the worker's process group, as the end of a
    forked build's process kills its group, and collect the worker's exited children;
    True where a process the build started lives on outside the group.

    The worker is a subreaper (Linux), so the orphans of its build's processes become its
    children: those in its group are killed until none is left. A process the build moved
    to a group of its own outlives the build, as it outlives a forked build (and retires
    the worker: it may hold the output pipes)."""
    try:  # one call where the build left no process (no child: no descendant either)
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    group = os.getpgrp()
    children: list[int] = []
    for _ in range(100):  # each round, the orphans of the killed come to the worker
        children = _children()
        members = [pid for pid in children if _group_of(pid) == group]
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
            break
        if pid == 0:
            break
    return any(os.path.exists(f"/proc/{pid}") for pid in children)


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
