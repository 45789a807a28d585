"""Runs one build: the job's callable with its logs, output and progress captured.

Two ways to run, one capture:

* :func:`execute_job` calls the job in this process (``isolation: inline``);
* :class:`ChildProcess` forks, runs :func:`execute_job` in the child, and streams everything
  back over a pipe as small ``marshal`` frames (primitive values only: the parent never
  unpickles or imports anything the job produced). The parent reads them, enforces the
  timeout (SIGTERM, then SIGKILL, to the child's whole process group) and decides the
  outcome, including a child killed by a signal.

This module knows nothing of storage: :mod:`jobcontrol.execution.local` writes what it reads.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from jobcontrol import context
from jobcontrol.context import SkipBuild
from jobcontrol.execution.frames import Emit, Frame, FrameWriter
from jobcontrol.execution.linux import die_with_parent, load_prctl
from jobcontrol.models import Build, BuildState, ExceptionInfo, StoredValue
from jobcontrol.secrets import Masker
from jobcontrol.serialize import MAX_MESSAGE, MAX_TRACEBACK, clean_text, encode_result, safe_repr
from jobcontrol.text import one_line

_MAX_REASON = 300
_FORMATTER = logging.Formatter()


class BuildInterrupted(BaseException):
    """Raised inside an inline job to stop it (Ctrl-C, SIGTERM, timeout)."""

    def __init__(self, state: BuildState, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


class JobFailed(Exception):
    """Raised by a job of jobcontrol's own (a shell job's command) to fail the build with
    ``reason`` as its reason ("exit status 3") and ``retval`` (unless None) as its return
    value, without an exception: the reason says it all."""

    def __init__(self, reason: str, retval: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retval = retval


#: True in a build's own process (forked for it, leading its own process group: the group
#: the runner kills when the build ends); False where builds run inline
_leads_build_group = False


def in_build_process() -> bool:
    """True in a process-isolated build's process (see :meth:`ChildCapture.isolate`):
    whatever it starts in its process group ends with the build."""
    return _leads_build_group


@dataclass(frozen=True)
class Outcome:
    """How a build ended, before it is stored."""

    state: BuildState
    reason: str | None = None
    result: StoredValue | None = None
    exception: ExceptionInfo | None = None

    def to_frame(self) -> Frame:
        result = self.result
        exc = self.exception
        return ("done", self.state.value, self.reason,
                result.kind if result else None, result.data if result else None,
                exc.type if exc else None, exc.message if exc else None,
                exc.traceback if exc else None)

    def cleaned(self, masker: Masker) -> Outcome:
        """This outcome fit to store: secrets masked, text valid UTF-8 and of bounded size."""
        if self.reason is None and self.exception is None and (
                self.result is None or self.result.kind != "repr"):
            return self  # a success: JSON and pickles are masked and valid already
        exc = self.exception
        if exc is not None:
            exc = ExceptionInfo(
                clean_text(exc.type, 1000),
                clean_text(exc.message, MAX_MESSAGE, masker.text),
                clean_text(exc.traceback, MAX_TRACEBACK, masker.text),
            )
        reason = None if self.reason is None else clean_text(self.reason, 1000, masker.text)
        result = self.result
        if result is not None and result.kind == "repr":
            result = StoredValue("repr", masker.text(result.data))
        return Outcome(self.state, reason, result, exc)

    @classmethod
    def from_frame(cls, frame: Frame) -> Outcome:
        _, state, reason, kind, data, exc_type, exc_message, exc_tb = frame
        return cls(
            BuildState(state), reason,
            StoredValue(kind, data) if kind is not None else None,
            ExceptionInfo(exc_type, exc_message, exc_tb) if exc_type is not None else None,
        )


# -- capture -------------------------------------------------------------------------------


class _CaptureHandler(logging.Handler):
    """Sends every log record (any logger reaching the root) as a frame."""

    def __init__(self, emit: Emit) -> None:
        super().__init__(logging.NOTSET)
        self._emit_frame = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string must not lose the line
            message = f"{safe_repr(record.msg, 2000)} (message formatting failed: {exc})"
        exc_text = None
        if record.exc_info:
            exc_text = _FORMATTER.formatException(record.exc_info)
        elif record.exc_text:
            exc_text = record.exc_text
        if record.stack_info:
            exc_text = f"{exc_text}\n{record.stack_info}" if exc_text else record.stack_info
        self._emit_frame(("log", record.created, record.levelno, record.name, message, exc_text))


#: capture handlers of builds that ended, for the next ones (making a logging.Handler
#: registers it and its lock with logging: a quick build paid more for that than its job)
_idle_handlers: list[_CaptureHandler] = []


def _discard(frame: Frame) -> None:
    """Where an idle capture handler would send a record (it is attached to nothing)."""


def _capture_handler(emit: Emit) -> _CaptureHandler:
    try:
        handler = _idle_handlers.pop()
    except IndexError:  # none idle (the first build, or a build inside a build)
        return _CaptureHandler(emit)
    handler._emit_frame = emit
    return handler


class LineWriter(io.TextIOBase):
    """A text stream that turns each written line into a log frame (for sys.stdout/stderr)."""

    def __init__(self, emit: Emit, name: str, level: int, fileno: int | None = None) -> None:
        super().__init__()
        self._emit_frame = emit
        self._name = name
        self._level = level
        self._fileno = fileno
        self._partial = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        if self._fileno is None:
            raise io.UnsupportedOperation("fileno")
        return self._fileno

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def attach_emit(self, emit: Emit) -> None:
        """Send lines to ``emit`` from now on, starting a new line (a writer reused)."""
        self._emit_frame = emit
        self._partial = ""

    def detach_emit(self) -> None:
        """Drop the build's ``emit``: a writer kept for reuse holds on to nothing."""
        self._emit_frame = _discard

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        import time

        now = time.time()
        for line in lines:
            self._emit_frame(("log", now, self._level, self._name, line.rstrip("\r"), None))
        return len(text)

    def finish(self) -> None:
        """Emit a last line written without a newline."""
        if self._partial:
            self.write("\n")


def _exception_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe_exception(exc: BaseException, tb: TracebackType | None) -> ExceptionInfo:
    try:
        message = str(exc)
    except Exception:
        message = f"<str() of {type(exc).__name__} failed>"
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return ExceptionInfo(_exception_name(exc), message, text)


def execute_job(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    build: Build,
    emit: Emit,
    result_mode: str = "json",
    masker: Masker | None = None,
) -> Outcome:
    """Call the job with logging and progress captured through ``emit``; never raises
    for what the job does. Secrets in the return value are masked before it is encoded."""
    previous = context._activate(build, lambda *item: emit(("progress", *item)))
    root = logging.getLogger()
    handler = _capture_handler(emit)
    old_level = root.level
    root.addHandler(handler)
    if old_level != logging.DEBUG:  # (held there already by root_at_debug(): left alone)
        root.setLevel(logging.DEBUG)
    try:
        try:
            value = func(*args, **kwargs)
        except SkipBuild as exc:
            return Outcome(BuildState.SKIPPED, one_line(exc.reason or "skipped", _MAX_REASON))
        except BuildInterrupted as exc:
            return Outcome(exc.state, exc.reason)
        except JobFailed as exc:
            result = None if exc.retval is None else encode_result(exc.retval, "json")
            return Outcome(BuildState.FAILED, one_line(exc.reason, _MAX_REASON), result)
        except BaseException as exc:  # the job's failure is the build's outcome
            # drop this frame: the traceback starts in the job's own code
            info = _describe_exception(exc, exc.__traceback__.tb_next
                                       if exc.__traceback__ else None)
            reason = info.type if not info.message else f"{info.type}: {info.message}"
            return Outcome(BuildState.FAILED, one_line(reason, _MAX_REASON), exception=info)
        if masker and result_mode == "json":
            value = masker.value(value)
        return Outcome(BuildState.SUCCESS, result=encode_result(value, result_mode))
    finally:
        root.removeHandler(handler)
        if root.level != old_level:  # (the job may have set it too)
            root.setLevel(old_level)
        context._activate(*previous)
        handler._emit_frame = _discard  # holds on to nothing of this build
        _idle_handlers.append(handler)


@contextlib.contextmanager
def root_at_debug() -> Iterator[None]:
    """Hold the root logger at ``DEBUG`` for a series of builds run in this process (a
    run's inline builds): each build's capture (:func:`execute_job`) finds it there and
    leaves it, instead of setting it and back each build. Every ``setLevel`` clears the
    cache of every logger in the process: per build, that cost a quick job as much as one
    of its log records, and more in a process with many loggers."""
    root = logging.getLogger()
    old_level = root.level
    if old_level != logging.DEBUG:
        root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        if root.level != old_level:
            root.setLevel(old_level)


# -- the child process -----------------------------------------------------------------------


def _terminated(signum: int, frame: object) -> None:
    # SIGTERM in the child: unwind the job so its finally blocks and context managers run
    raise SystemExit(f"terminated by {signal.Signals(signum).name}")


# -- what a process that forks build processes needs (the runner here, and the pool's
# workers): load_prctl() in the parent, die_with_parent() in each child
# (:mod:`jobcontrol.execution.linux`), a ChildCapture to run the build


def _child_main(
    frame_fd: int, out_fd: int, err_fd: int, func: Callable[..., Any], args: tuple[Any, ...],
    kwargs: dict[str, Any], build: Build, result_mode: str, masker: Masker | None,
    parent_pid: int,
) -> None:
    """The child's whole life; it leaves through ``os._exit`` from the caller."""
    die_with_parent()
    if os.getppid() != parent_pid:  # the runner died before prctl took effect
        os._exit(70)
    capture = ChildCapture()
    capture.isolate()
    capture.run(frame_fd, out_fd, err_fd, func, args, kwargs, build, result_mode, masker)


class ChildCapture:
    """A build process's setup, in parts: the writers (made first), :meth:`isolate` (what
    the process does before a build, whichever), and :meth:`run` (a forked child) or
    :meth:`run_warm` (a pool worker), which run the job.
    """

    def __init__(self) -> None:
        self.emit = FrameWriter(-1)  # the frame pipe comes with the build
        self.stdout = LineWriter(self.emit, "stdout", logging.INFO, fileno=1)
        self.stderr = LineWriter(self.emit, "stderr", logging.WARNING, fileno=2)

    def isolate(self) -> None:
        """Its own process group, signals, stdin from /dev/null, no inherited log handler."""
        global _leads_build_group
        os.setpgid(0, 0)  # its own process group: a timeout kills the job's subprocesses too
        _leads_build_group = True
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:  # pragma: no cover - not the main thread
            pass
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _terminated)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        root = logging.getLogger()
        for old in list(root.handlers):  # the parent's handlers would write to its terminal
            root.removeHandler(old)

    def run(self, frame_fd: int, out_fd: int, err_fd: int, func: Callable[..., Any],
            args: tuple[Any, ...], kwargs: dict[str, Any], build: Build, result_mode: str,
            masker: Masker | None) -> None:
        """Run the build, its output going to the pipes; returns when all is sent."""
        # fd level: what subprocesses and C code write; Python level: print() keeps log order
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        self.emit._fd = frame_fd
        self._execute(func, args, kwargs, build, result_mode, masker)
        # the runner sees the end of the pipes now, not after the kernel has torn down this
        # process's memory (exit closes files last): recording the outcome and starting the
        # next build overlap with that teardown
        for fd in (frame_fd, 1, 2):
            with contextlib.suppress(OSError):
                os.close(fd)

    def run_warm(self, frame_fd: int, func: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], build: Build, result_mode: str,
                 masker: Masker | None) -> Frame:
        """Run a build in a warm worker (:mod:`.pool_worker`): fds 1 and 2 are the
        worker's output pipes already, kept from build to build; the frame pipe too. The
        outcome's frame is returned, not sent: the worker sends it with its end frame,
        in one write (:meth:`~.frames.FrameWriter.last`)."""
        self.emit._fd = frame_fd
        return self._execute(func, args, kwargs, build, result_mode, masker, send=False)

    def _execute(self, func: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], build: Build, result_mode: str,
                 masker: Masker | None, send: bool = True) -> Frame:
        """Call the job with print() going to the writers; its outcome's frame, sent
        (unless ``send`` is false)."""
        sys.stdout, sys.stderr = self.stdout, self.stderr
        outcome = execute_job(func, args, kwargs, build, self.emit, result_mode, masker)
        self.stdout.finish()
        self.stderr.finish()
        frame = outcome.to_frame()
        if send:
            self.emit(frame)
        return frame


@dataclass
class ChildProcess:
    """The parent's handle on one forked build: its pipes, deadline and exit status."""

    pid: int
    frame_fd: int
    out_fd: int
    err_fd: int
    pidfd: int | None

    @classmethod
    def spawn(
        cls, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        build: Build, result_mode: str = "json", masker: Masker | None = None,
    ) -> ChildProcess:
        """Fork a child that runs the job; returns at once."""
        load_prctl()
        parent_pid = os.getpid()
        frame_r, frame_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child (coverage cannot follow os._exit)
            code = 0
            try:
                for fd in (frame_r, out_r, err_r):
                    os.close(fd)
                _child_main(frame_w, out_w, err_w, func, args, kwargs, build, result_mode,
                            masker, parent_pid)
            except BaseException:
                code = 70  # the capture itself broke: the parent reports the exit code
            finally:
                os._exit(code)
        for fd in (frame_w, out_w, err_w):
            os.close(fd)
        for fd in (frame_r, out_r, err_r):
            os.set_blocking(fd, False)
        pidfd = None
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:  # older kernels: the executor polls instead
                pidfd = None
        return cls(pid, frame_r, out_r, err_r, pidfd)

    def build_over(self, frame: Frame) -> None:
        """An ``("end", ...)`` frame: a warm worker's word that the build is over
        (:class:`~.pool.PoolChild`); a forked child's end is its exit, and this ignores it."""

    def signal_group(self, signum: int) -> None:
        """Send a signal to the child and every process it started (its process group)."""
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def exited(self) -> bool:
        """True once the child has exited; it stays a zombie until :meth:`reap`, so its
        process group id cannot be reused while we still signal it."""
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def reap(self, need_status: bool = True) -> int:
        """Kill what the job left behind, collect the child; returns its wait status
        (``need_status`` matters to a pool worker only: :class:`~.pool.PoolChild`)."""
        self.signal_group(signal.SIGKILL)
        status = 0
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        for fd in (self.frame_fd, self.out_fd, self.err_fd, self.pidfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        return status


def outcome_from_status(status: int) -> Outcome:
    """The outcome of a child that exited without sending one."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return Outcome(BuildState.FAILED, f"killed by signal {name} ({signum})")
    code = os.waitstatus_to_exitcode(status)
    return Outcome(BuildState.FAILED, f"process exited with code {code} without a result")
