"""The local executor: runs claimed builds in child processes (or inline) and records them.

One single-threaded loop multiplexes every running child: it reads their frames, writes logs
and progress to storage in batches, beats the heartbeat, enforces timeouts and stop requests,
and records each outcome. Nothing here decides *what* to build (that is :mod:`jobcontrol.core`).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jobcontrol.errors import StorageError
from jobcontrol.models import Build, BuildState, LogRecord, ProgressItem
from jobcontrol.runner import (
    BuildInterrupted,
    ChildProcess,
    Frame,
    FrameReader,
    LineWriter,
    Outcome,
    execute_job,
    outcome_from_status,
)
from jobcontrol.secrets import Masker
from jobcontrol.serialize import MAX_MESSAGE, MAX_TRACEBACK, clean_text
from jobcontrol.storage.base import Storage
from jobcontrol.timeutil import format_duration, utcnow

if TYPE_CHECKING:
    from jobcontrol.forkserver import ForkServer

HOSTNAME = socket.gethostname()
_READ_SIZE = 1 << 16
#: log records kept in memory for a build while the storage cannot take them; past this
#: the oldest are dropped (and counted): a long outage must not eat the machine's memory
MAX_BUFFERED_RECORDS = 200_000
#: how long a build's outcome is retried against a storage that is down, in seconds
FINISH_RETRY_WINDOW = 300.0
#: seconds between two looks for cancel requests (``jobcontrol cancel`` from anywhere)
CANCEL_POLL_INTERVAL = 1.0

logger = logging.getLogger(__name__)


class BuildObserver:
    """Receives what happens during a run (the CLI renders it). Every method is optional."""

    def build_started(self, build: Build) -> None:
        """A build was claimed and is about to run."""

    def build_log(self, build: Build, record: LogRecord) -> None:
        """A log record arrived (before it is stored)."""

    def build_progress(self, build: Build, item: ProgressItem) -> None:
        """A progress report arrived."""

    def build_finished(self, build: Build) -> None:
        """A build's outcome was recorded."""

    def build_retrying(self, build: Build, delay: float, attempt: int, attempts: int) -> None:
        """A failed build will be retried after ``delay`` seconds (retry ``attempt`` of
        ``attempts``)."""

    def notification_failed(self, build: Build, problem: str) -> None:
        """A notification of the build's job could not be sent (the build is not affected)."""

    def job_not_built(self, job_id: str, reason: str) -> None:
        """A job of the plan was not built (up to date, or blocked by a failure)."""


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


@dataclass
class _Running:
    """One build in flight, with what it produced that is not stored yet."""

    build: Build
    timeout: float | None
    child: ChildProcess | None = None
    #: splits the child's frame pipe (None for an inline build: it has no pipe)
    reader: FrameReader | None = None
    partial: dict[int, bytes] = field(default_factory=dict)
    logs: list[LogRecord] = field(default_factory=list)
    progress: dict[tuple[str, ...], ProgressItem] = field(default_factory=dict)
    outcome: Outcome | None = None
    stop: Outcome | None = None
    kill_at: float | None = None
    started: float = field(default_factory=time.monotonic)
    open_fds: set[int] = field(default_factory=set)
    #: records dropped because the storage was unreachable too long
    lost_records: int = 0


class LocalExecutor:
    """Runs builds on this machine and records everything they report.

    ``start()`` a claimed build, then ``wait()`` until builds finish. ``request_stop()`` is
    safe to call from a signal handler: running builds are terminated and recorded with the
    given state and reason.
    """

    def __init__(
        self,
        storage: Storage,
        observer: BuildObserver | None = None,
        *,
        heartbeat_interval: float = 5.0,
        kill_grace: float = 5.0,
        flush_interval: float = 0.2,
        flush_records: int = 2000,
        masker: Masker | None = None,
        cancel_poll_interval: float = CANCEL_POLL_INTERVAL,
        defer_commits: bool = False,
    ) -> None:
        self.storage = storage
        #: outcomes may be left for the storage to commit with its next write (the caller's
        #: claim of the next build): see ``Storage.finish_build_with_logs(commit_later)``.
        #: :meth:`wait` commits them before it blocks; the caller, before anything else
        #: that may wait, and at the end
        self.defer_commits = defer_commits
        self.observer = observer or BuildObserver()
        self.masker = masker or Masker()
        self.heartbeat_interval = heartbeat_interval
        self.kill_grace = kill_grace
        self.flush_interval = flush_interval
        self.flush_records = flush_records
        self.cancel_poll_interval = cancel_poll_interval
        self._last_cancel_poll = time.monotonic()
        self._running: dict[int, _Running] = {}
        self._finished: list[Build] = []
        self._stop_request: tuple[BuildState, str] | None = None
        self._inline: _Running | None = None
        self._inline_watcher: _InlineWatcher | None = None
        #: the inline build a cancel request was found for (read by the SIGUSR1 handler)
        self._inline_cancel: tuple[int, str] | None = None
        self._last_heartbeat = time.monotonic()
        self._last_flush = time.monotonic()
        self._fork_server: ForkServer | None = None
        #: SIGUSR1's handler before the first inline build took it (restored by close())
        self._usr1_before: tuple[Any] | None = None
        #: stdout/stderr writers of inline builds that ended, for the next ones
        self._writers: list[tuple[LineWriter, LineWriter]] = []

    # -- public --------------------------------------------------------------------------

    @property
    def running(self) -> int:
        """How many builds are in flight."""
        return len(self._running)

    @property
    def stopping(self) -> bool:
        """True once a stop was requested: start nothing new."""
        return self._stop_request is not None

    def request_stop(self, reason: str, state: BuildState = BuildState.CANCELLED) -> None:
        """Stop every running build (from a signal handler too). An inline build is
        interrupted where it stands."""
        self._stop_request = (state, reason)
        if self._inline is not None and threading.current_thread() is threading.main_thread():
            raise BuildInterrupted(state, reason)

    def start(
        self,
        build: Build,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
        isolation: str = "process",
        result_mode: str = "json",
        function_path: str | None = None,
    ) -> None:
        """Run a claimed build: forked, or inline (to its end, before returning).

        With a fork server (:meth:`use_fork_server`) and the ``function_path`` the callable
        was imported from, the server forks the build's process instead of this one."""
        entry = _Running(build, timeout)
        self._running[build.id] = entry
        self.observer.build_started(build)
        if isolation == "inline":
            self._run_inline(entry, func, args, kwargs, result_mode)
            return
        try:
            child = self._spawn(func, args, kwargs, build, result_mode, function_path)
        except OSError as exc:
            entry.outcome = Outcome(BuildState.FAILED, f"could not start a process: {exc}")
            self._finish(entry)
            return
        entry.child = child
        entry.reader = FrameReader()
        entry.open_fds = {child.frame_fd, child.out_fd, child.err_fd}

    def _spawn(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               build: Build, result_mode: str, function_path: str | None) -> ChildProcess:
        if self._fork_server is not None and function_path is not None:
            from jobcontrol.forkserver import ForkServerError, ForkServerLost

            try:
                return ChildProcess.spawn_from(self._fork_server, function_path, args, kwargs,
                                               build, result_mode, self.masker)
            except ForkServerLost as exc:  # it may have started (and died with the server)
                self._drop_fork_server()
                raise OSError(f"the fork server died while starting it ({exc})") from exc
            except ForkServerError as exc:  # e.g. arguments that do not pickle: fork here
                logger.debug("build %s: forked by the runner: %s", build.id, exc)
                if not self._fork_server.alive():
                    self._drop_fork_server()
        return ChildProcess.spawn(func, args, kwargs, build, result_mode, self.masker)

    @property
    def forks_from_server(self) -> bool:
        """True while process-isolated builds are forked by a fork server."""
        return self._fork_server is not None

    def use_fork_server(self) -> bool:
        """Fork process-isolated builds from a fork server (see :mod:`jobcontrol.forkserver`)
        from now until :meth:`close`; False where none can start (builds fork from here)."""
        if self._fork_server is not None:
            return True
        from jobcontrol.forkserver import ForkServer, ForkServerError, available

        if not available():
            return False
        try:
            self._fork_server = ForkServer()
        except ForkServerError as exc:
            logger.warning("builds fork from the runner: %s", exc)
            return False
        return True

    def close(self) -> None:
        """Release what the executor holds between builds (its fork server, the thread
        that watches inline builds). Call it when nothing runs any more; starting another
        build later takes them up again."""
        self._drop_fork_server()
        watcher, self._inline_watcher = self._inline_watcher, None
        if watcher is not None:
            watcher.stopped.set()
        before, self._usr1_before = self._usr1_before, None
        if before is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, before[0])

    def _drop_fork_server(self) -> None:
        server, self._fork_server = self._fork_server, None
        if server is not None:
            server.close()

    def wait(self, timeout: float | None = None) -> list[Build]:
        """Block until at least one build finishes (or ``timeout`` passes); return the
        finished builds as recorded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._finished and self._running:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if self.defer_commits:  # about to block: nothing may stay uncommitted
                self.storage.commit_pending()
            self._poll(self._next_wakeup(now, deadline))
        finished, self._finished = self._finished, []
        return finished

    # -- inline ----------------------------------------------------------------------------

    def _run_inline(self, entry: _Running, func: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any], result_mode: str) -> None:
        in_main = threading.current_thread() is threading.main_thread()
        old_alarm = None
        if entry.timeout and in_main:
            reason = f"timed out after {format_duration(entry.timeout)}"

            def on_alarm(signum: int, frame: object) -> None:
                raise BuildInterrupted(BuildState.FAILED, reason)

            old_alarm = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, entry.timeout)
        if in_main and self._usr1_before is None:
            # installed once, kept until close(): per build it cost as much as a quick job
            self._usr1_before = (signal.signal(signal.SIGUSR1, self._on_inline_cancel),)
        self._inline = entry
        self._watch_inline()

        def emit(frame: Frame) -> None:
            self._handle(entry, frame)

        stdout, stderr = self._inline_writers(emit)
        try:
            # print() is captured as in a child; output of subprocesses is not (no fork)
            saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = stdout, stderr  # type: ignore[assignment]
            try:
                entry.outcome = execute_job(func, args, kwargs, entry.build, emit,
                                            result_mode, self.masker)
            finally:
                sys.stdout, sys.stderr = saved
                stdout.finish()
                stderr.finish()
        except BuildInterrupted as exc:  # arrived outside the job's own call
            entry.outcome = Outcome(exc.state, exc.reason)
        finally:
            stdout.detach_emit()
            stderr.detach_emit()
            self._writers.append((stdout, stderr))
            self._inline = None
            if old_alarm is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old_alarm)
        self._finish(entry)

    def _inline_writers(self, emit: Callable[[Frame], None]) -> tuple[LineWriter, LineWriter]:
        """The stdout and stderr an inline build writes to, sending lines to ``emit``:
        those of an earlier build where one is free (made once, not per build)."""
        try:
            stdout, stderr = self._writers.pop()
        except IndexError:  # the first inline build (or one started by an inline job)
            return (LineWriter(emit, "stdout", logging.INFO),
                    LineWriter(emit, "stderr", logging.WARNING))
        stdout.attach_emit(emit)
        stderr.attach_emit(emit)
        return stdout, stderr

    def _watch_inline(self) -> None:
        """Start the thread that beats inline builds' heartbeats and finds their cancel
        requests (one for the executor's life: a thread per build would cost more than a
        quick job)."""
        if self._inline_watcher is None:
            self._inline_watcher = _InlineWatcher(self)
            self._inline_watcher.start()

    def _inline_cancelled(self, build_id: int, reason: str) -> None:
        """Called by the watcher thread: interrupt the inline build in the main thread."""
        if threading.current_thread() is threading.main_thread():  # pragma: no cover
            return
        self._inline_cancel = (build_id, reason)
        main = threading.main_thread()
        if main.ident is not None:
            signal.pthread_kill(main.ident, signal.SIGUSR1)

    def _on_inline_cancel(self, signum: int, frame: object) -> None:
        request, self._inline_cancel = self._inline_cancel, None
        if request is not None and self._inline is not None \
                and self._inline.build.id == request[0]:  # not a build started since
            raise BuildInterrupted(BuildState.CANCELLED, request[1])

    # -- the loop ----------------------------------------------------------------------------

    def _next_wakeup(self, now: float, deadline: float | None) -> float:
        wake = now + 1.0
        if deadline is not None:
            wake = min(wake, deadline)
        if any(entry.logs or entry.progress for entry in self._running.values()):
            wake = min(wake, self._last_flush + self.flush_interval)
        wake = min(wake, self._last_heartbeat + self.heartbeat_interval)
        wake = min(wake, self._last_cancel_poll + self.cancel_poll_interval)
        for entry in self._running.values():
            if entry.child and entry.child.pidfd is None:
                wake = min(wake, now + 0.05)  # no pidfd: poll for exits
            if entry.kill_at is not None:
                wake = min(wake, entry.kill_at)
            elif entry.timeout is not None:
                wake = min(wake, entry.started + entry.timeout)
        if self._stop_request:
            wake = now
        return max(0.0, wake - now)

    def _poll(self, wait: float) -> None:
        fds: dict[int, _Running] = {}
        for entry in self._running.values():
            for fd in entry.open_fds:
                fds[fd] = entry
            if entry.child and entry.child.pidfd is not None:
                fds[entry.child.pidfd] = entry
        ready: list[int] = []
        if fds:
            ready, _, _ = select.select(list(fds), [], [], wait)
        elif wait:
            time.sleep(wait)
        for fd in ready:
            entry = fds[fd]
            if fd in entry.open_fds:
                self._read(entry, fd)
        now = time.monotonic()
        self._enforce_limits(now)
        for entry in list(self._running.values()):
            child = entry.child
            if child is not None and (not entry.open_fds or child.exited()):
                self._collect(entry)
        if now - self._last_flush >= self.flush_interval:
            self._flush_all()
        if now - self._last_heartbeat >= self.heartbeat_interval:
            self._last_heartbeat = now
            ids = [build_id for build_id, e in self._running.items() if e.child]
            if ids:
                try:
                    self.storage.heartbeat(ids)
                except StorageError as exc:  # the next beat tries again
                    logger.warning("heartbeat not recorded: %s", exc)
        if now - self._last_cancel_poll >= self.cancel_poll_interval:
            self._last_cancel_poll = now
            self._stop_cancelled(now)

    def _stop_cancelled(self, now: float) -> None:
        """Terminate the builds someone asked to stop (through the storage)."""
        ids = [build_id for build_id, entry in self._running.items()
               if entry.child is not None and entry.stop is None and entry.outcome is None]
        if not ids:
            return
        try:
            requests = self.storage.cancel_requests(ids)
        except StorageError as exc:  # the next poll tries again
            logger.warning("cancel requests not read: %s", exc)
            return
        for build_id, reason in requests.items():
            entry = self._running[build_id]
            self._terminate(entry, Outcome(BuildState.CANCELLED, reason or "cancelled"), now)

    def _read(self, entry: _Running, fd: int) -> None:
        """Read what is there; returns at EOF or when the pipe is empty."""
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                entry.open_fds.discard(fd)
                self._output_line(entry, fd, entry.partial.pop(fd, b""), final=True)
                return
            if entry.child and fd == entry.child.frame_fd:
                assert entry.reader is not None
                for frame in entry.reader.feed(data):
                    self._handle(entry, frame)
            else:
                lines = (entry.partial.pop(fd, b"") + data).split(b"\n")
                entry.partial[fd] = lines.pop()
                for line in lines:
                    self._output_line(entry, fd, line)
            if len(data) < _READ_SIZE:
                return

    def _output_line(self, entry: _Running, fd: int, line: bytes, final: bool = False) -> None:
        if final and not line:
            return
        assert entry.child is not None
        is_err = fd == entry.child.err_fd
        text = line.decode("utf-8", "replace").rstrip("\r")
        self._handle(entry, ("log", time.time(), logging.WARNING if is_err else logging.INFO,
                             "stderr" if is_err else "stdout", text, None))

    def _handle(self, entry: _Running, frame: Frame) -> None:
        kind = frame[0]
        if kind == "log":
            _, created, level, name, message, exc_text = frame
            mask = self.masker.text
            record = LogRecord(
                _utc(created), level, clean_text(name, 200, mask),
                clean_text(message, MAX_MESSAGE, mask),
                None if exc_text is None else clean_text(exc_text, MAX_TRACEBACK, mask),
            )
            entry.logs.append(record)
            self.observer.build_log(entry.build, record)
            if len(entry.logs) >= self.flush_records:
                self._flush(entry)
        elif kind == "progress":
            _, group, current, total, message, created = frame
            if message is not None:
                message = clean_text(message, 1000, self.masker.text)
            item = ProgressItem(tuple(clean_text(g, 200, self.masker.text) for g in group),
                                current, total, message, _utc(created))
            entry.progress[item.group] = item
            self.observer.build_progress(entry.build, item)
        elif kind == "done":
            entry.outcome = Outcome.from_frame(frame)

    def _enforce_limits(self, now: float) -> None:
        for entry in self._running.values():
            child = entry.child
            if child is None or entry.outcome is not None:
                continue
            if entry.kill_at is not None:
                if now >= entry.kill_at:
                    child.signal_group(signal.SIGKILL)
                    entry.kill_at = now + 3600  # sent; the exit is what we wait for now
                continue
            if self._stop_request is not None:
                state, reason = self._stop_request
                self._terminate(entry, Outcome(state, reason), now)
            elif entry.timeout is not None and now - entry.started >= entry.timeout:
                reason = f"timed out after {format_duration(entry.timeout)}"
                self._terminate(entry, Outcome(BuildState.FAILED, reason), now)

    def _terminate(self, entry: _Running, outcome: Outcome, now: float) -> None:
        assert entry.child is not None
        entry.stop = outcome
        entry.kill_at = now + self.kill_grace
        entry.child.signal_group(signal.SIGTERM)

    def _collect(self, entry: _Running) -> None:
        """The child exited: drain its pipes, clean up its process group, record it."""
        child = entry.child
        assert child is not None
        for fd in list(entry.open_fds):
            self._read(entry, fd)
        for fd in list(entry.partial):
            self._output_line(entry, fd, entry.partial.pop(fd), final=True)
        # the exit status only matters when the child sent no outcome
        status = child.reap(need_status=entry.stop is None and entry.outcome is None)
        if entry.stop is not None:
            entry.outcome = entry.stop
        elif entry.outcome is None:
            entry.outcome = outcome_from_status(status)
        self._finish(entry)

    # -- storage -------------------------------------------------------------------------------

    def _flush(self, entry: _Running) -> bool:
        """Write what the build produced; on a storage fault keep it for the next try
        (bounded) and return False."""
        try:
            if entry.logs:
                self.storage.append_logs(entry.build.id, entry.logs)
                entry.logs = []
            if entry.progress:
                self.storage.set_progress(entry.build.id, list(entry.progress.values()))
                entry.progress = {}
        except StorageError as exc:
            excess = len(entry.logs) - MAX_BUFFERED_RECORDS
            if excess > 0:
                del entry.logs[:excess]
                entry.lost_records += excess
            logger.warning("build %s: storage unavailable, %d log records held: %s",
                           entry.build.id, len(entry.logs), exc)
            return False
        return True

    def _flush_all(self) -> None:
        self._last_flush = time.monotonic()
        for entry in self._running.values():
            self._flush(entry)

    def _finish(self, entry: _Running) -> None:
        outcome = entry.outcome
        assert outcome is not None
        outcome = outcome.cleaned(self.masker)
        if entry.lost_records:
            entry.logs.insert(0, LogRecord(
                utcnow(), logging.ERROR, "jobcontrol",
                f"{entry.lost_records} log records were lost while the storage was "
                f"unreachable",
            ))
        build = self._write_outcome(entry, outcome)
        if build.state is not outcome.state or build.reason != outcome.reason:
            # fenced off: someone else decided this build's fate first (abandoned, say)
            note = (f"runner finished with {outcome.state} but the build was already "
                    f"{build.state}; its result was not recorded")
            logger.warning("build %s: %s", build.id, note)
            try:
                self.storage.append_logs(build.id, [
                    LogRecord(utcnow(), logging.WARNING, "jobcontrol", note)])
            except StorageError:
                pass
        del self._running[entry.build.id]
        self._finished.append(build)
        self.observer.build_finished(build)

    def _write_outcome(self, entry: _Running, outcome: Outcome) -> Build:
        """Flush the last records and record the outcome, retrying a storage that is down
        for a while (the job is over; only the record is at stake)."""
        deadline = time.monotonic() + FINISH_RETRY_WINDOW
        pause = 0.2
        while True:
            try:
                if entry.progress:
                    self.storage.set_progress(entry.build.id, list(entry.progress.values()))
                    entry.progress = {}
                # the last records and the outcome in one transaction where the storage can
                build = self.storage.finish_build_with_logs(
                    entry.build.id, outcome.state, logs=entry.logs, reason=outcome.reason,
                    result=outcome.result, exception=outcome.exception,
                    commit_later=self.defer_commits,
                )
                entry.logs = []
                return build
            except StorageError as exc:
                if time.monotonic() >= deadline:
                    raise
                logger.warning("build %s: outcome not recorded yet: %s", entry.build.id, exc)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


class _InlineWatcher(threading.Thread):
    """Beside inline builds (which run in the caller's thread): beats the heartbeat of the
    one running and looks for a request to cancel it."""

    def __init__(self, executor: LocalExecutor) -> None:
        super().__init__(name="jobcontrol-inline-watcher", daemon=True)
        self.executor = executor
        self.stopped = threading.Event()

    def run(self) -> None:
        executor = self.executor
        tick = min(executor.heartbeat_interval, executor.cancel_poll_interval)
        last_beat = time.monotonic()
        while not self.stopped.wait(tick):
            entry = executor._inline
            if entry is None:
                continue
            build_id = entry.build.id
            try:
                if time.monotonic() - last_beat >= executor.heartbeat_interval:
                    last_beat = time.monotonic()
                    executor.storage.heartbeat([build_id])
                reason = executor.storage.cancel_requests([build_id]).get(build_id)
            except StorageError as exc:  # the next tick tries again
                logger.warning("inline build %s not watched: %s", build_id, exc)
                continue
            if reason is not None:
                executor._inline_cancelled(build_id, reason or "cancelled")
