"""The local executor: runs claimed builds in child processes (or inline) and records them.

One single-threaded loop multiplexes every running child: it reads their frames, writes logs
and progress to storage in batches, beats the heartbeat, enforces timeouts and stop requests,
and records each outcome. Nothing here decides *what* to build (that is :mod:`jobcontrol.rules`).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jobcontrol.errors import StorageError
from jobcontrol.execution.frames import Frame, FrameReader
from jobcontrol.execution.inline import InlineBuilds
from jobcontrol.execution.observer import BuildObserver
from jobcontrol.execution.recorder import Recorder, ended
from jobcontrol.execution.runner import (
    BuildInterrupted,
    ChildProcess,
    Outcome,
    outcome_from_status,
)
from jobcontrol.execution.running import Running, held_size, holds_too_much, shed
from jobcontrol.models import Build, BuildState, LogRecord, ProgressItem
from jobcontrol.secrets import Masker
from jobcontrol.serialize import MAX_MESSAGE, MAX_TRACEBACK, clean_text
from jobcontrol.storage.base import Storage
from jobcontrol.timeutil import format_duration, utcnow

if TYPE_CHECKING:
    from jobcontrol.execution.pool import WorkerPool

_READ_SIZE = 1 << 16
#: seconds between two looks for cancel requests (``jobcontrol cancel`` from anywhere)
CANCEL_POLL_INTERVAL = 1.0

logger = logging.getLogger(__name__)


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


class LocalExecutor:
    """Runs builds on this machine and records everything they report.

    ``start()`` a claimed build, then ``wait()`` until builds finish. ``request_stop()`` is
    safe to call from a signal handler: running builds are terminated and recorded with the
    given state and reason.

    A storage that refuses writes (a full disk, a read-only or unreachable database) is
    warned about once, and tried again after a pause that doubles up to
    ``MAX_WRITE_PAUSE`` (:mod:`~jobcontrol.execution.recorder`): the jobs go on
    meanwhile, their log records held in memory (up to ``MAX_HELD_BYTES`` a build, the
    oldest dropped past it and counted in the record: :mod:`~jobcontrol.execution.running`).
    An outcome is tried again for ``outcome_retry`` seconds, the other builds served
    meanwhile; then :class:`OutcomeNotRecordedError`.
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
        outcome_retry: float = 300.0,
        max_builds_per_worker: int = 100,
        max_worker_memory: int | None = None,
    ) -> None:
        self.storage = storage
        #: ``isolation: pool``'s warm workers (started with its first build) and their limits
        self._pool: WorkerPool | None = None
        self._pool_limits = (max_builds_per_worker, max_worker_memory)
        self.outcome_retry = outcome_retry
        self.recorder = Recorder(storage, outcome_retry=outcome_retry,
                                 first_pause=flush_interval)
        self.observer = observer or BuildObserver()
        self.masker = masker or Masker()
        self.heartbeat_interval = heartbeat_interval
        self.kill_grace = kill_grace
        self.flush_interval = flush_interval
        self.flush_records = flush_records
        self.cancel_poll_interval = cancel_poll_interval
        self._last_cancel_poll = time.monotonic()
        self._running: dict[int, Running] = {}
        self._finished: list[Build] = []
        self._stop_request: tuple[BuildState, str] | None = None
        self._inline = InlineBuilds(
            storage, self.masker, handle=self._handle, finish=self._finish,
            running_ids=lambda: list(self._running), refused=self.recorder.refused,
            flush=self.recorder.flush, heartbeat_interval=heartbeat_interval,
            cancel_poll_interval=cancel_poll_interval, flush_interval=flush_interval)
        self._last_heartbeat = time.monotonic()
        self._last_flush = time.monotonic()

    # -- public --------------------------------------------------------------------------

    @property
    def running(self) -> int:
        """How many builds are in flight."""
        return len(self._running)

    @property
    def has_finished(self) -> bool:
        """True while builds that finished wait for :meth:`wait` to return them (an
        inline build, finished within :meth:`start`)."""
        return bool(self._finished)

    @property
    def stopping(self) -> bool:
        """True once a stop was requested: start nothing new."""
        return self._stop_request is not None

    def request_stop(self, reason: str, state: BuildState = BuildState.CANCELLED) -> None:
        """Stop every running build (from a signal handler too). An inline build is
        interrupted where it stands."""
        self._stop_request = (state, reason)
        if self._inline.current is not None \
                and threading.current_thread() is threading.main_thread():
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
        """Run a claimed build: forked, in a pool worker, or inline (to its end, before
        returning). A pool worker imports the callable itself, from ``function_path``."""
        entry = Running(build, timeout)
        self._running[build.id] = entry
        self.observer.build_started(build)
        if isolation == "inline":
            self._inline.run(entry, func, args, kwargs, result_mode)
            return
        try:
            child = self._spawn(func, args, kwargs, build, result_mode, function_path,
                                isolation)
        except OSError as exc:
            entry.outcome = Outcome(BuildState.FAILED, f"could not start a process: {exc}")
            self._finish(entry)
            return
        entry.child = child
        entry.reader = FrameReader()
        entry.open_fds = {child.frame_fd, child.out_fd, child.err_fd}
        if build.pgid == child.pid:  # the claim recorded it (see next_process_group)
            return
        try:
            # the child leads its own process group: recorded, so that should this runner
            # die, the command that marks the build abandoned here kills what the job started
            self.storage.set_process_group(build.id, child.pid)
        except StorageError as exc:  # the build runs on; only that cleanup is at stake
            logger.warning("build %s: process group not recorded: %s", build.id, exc)

    def next_process_group(self, isolation: str) -> int | None:
        """The process group the next build of ``isolation`` will run in, where it is known
        before the build starts (a pool's warm worker leads its own), so that its claim
        records it: one write a build less. None otherwise (the start records it)."""
        if isolation != "pool":
            return None
        from jobcontrol.execution.pool import PoolError

        try:
            return self._worker_pool().next_worker()
        except PoolError:  # no worker can start: the start says so (and forks the build)
            return None

    def _worker_pool(self) -> WorkerPool:
        if self._pool is None:
            from jobcontrol.execution.pool import WorkerPool

            max_builds, max_memory = self._pool_limits
            self._pool = WorkerPool(max_builds=max_builds, max_memory=max_memory)
        return self._pool

    def _spawn(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               build: Build, result_mode: str, function_path: str | None,
               isolation: str = "process") -> ChildProcess:
        if isolation == "pool" and function_path is not None:
            from jobcontrol.execution.pool import PoolError

            try:
                return self._worker_pool().start(function_path, args, kwargs, build, result_mode,
                                        self.masker)
            except PoolError as exc:  # e.g. arguments that do not pickle: fork it here
                logger.warning("build %s: forked by the runner: %s", build.id, exc)
        return ChildProcess.spawn(func, args, kwargs, build, result_mode, self.masker)

    def close(self) -> None:
        """Release what the executor holds between builds (its pool's workers, the thread
        that watches inline builds). Call it when nothing runs any more; starting another
        build later takes them up again."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        self._inline.close()

    def wait(self, timeout: float | None = None) -> list[Build]:
        """Block until at least one build finishes (or ``timeout`` passes); return the
        finished builds as recorded."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._finished and self._running:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            self._poll(self._next_wakeup(now, deadline))
        finished, self._finished = self._finished, []
        return finished

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
            if entry.record_by is not None:
                wake = min(wake, entry.record_at)
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
        fds: dict[int, Running] = {}
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
            frame_fd = entry.child.frame_fd if entry.child else None
            if fd != frame_fd and frame_fd in entry.open_fds:
                # what the job printed or logged before a subprocess wrote to its fds is
                # already in the frame pipe: it is recorded first, whatever select's order
                self._read(entry, frame_fd)
            if fd in entry.open_fds:
                self._read(entry, fd)
        now = time.monotonic()
        self._enforce_limits(now)
        for entry in list(self._running.values()):
            child = entry.child
            if child is not None and (not entry.open_fds or child.exited()):
                self._collect(entry)
            elif entry.record_by is not None and now >= entry.record_at:
                self._record(entry)
        if now - self._last_flush >= self.flush_interval:
            self._flush_all()
        if now - self._last_heartbeat >= self.heartbeat_interval:
            self._last_heartbeat = now
            ids = [build_id for build_id, e in self._running.items() if e.child]
            if ids:
                try:
                    ended = self.storage.heartbeat(ids)
                except StorageError as exc:  # the next beat tries again
                    self.recorder.refused(exc)
                else:
                    for build_id in ended:
                        self._stop_ended(build_id, now)
        if now - self._last_cancel_poll >= self.cancel_poll_interval:
            self._last_cancel_poll = now
            self._stop_cancelled(now)

    def _stop_ended(self, build_id: int, now: float) -> None:
        """Someone else ended this build (marked it abandoned while this runner was stopped
        or cut off, say): its record is theirs, and its job must not run on beside a new
        build of the job. Stop it as a timeout does; its outcome is not recorded."""
        entry = self._running.get(build_id)
        if entry is None or entry.child is None or entry.stop is not None \
                or entry.outcome is not None:
            return
        logger.warning("build %s was ended elsewhere: stopping its job", build_id)
        self._terminate(entry, Outcome(BuildState.FAILED, "stopped: ended elsewhere"), now)

    def _stop_cancelled(self, now: float) -> None:
        """Terminate the builds someone asked to stop (through the storage)."""
        ids = [build_id for build_id, entry in self._running.items()
               if entry.child is not None and entry.stop is None and entry.outcome is None]
        if not ids:
            return
        try:
            requests = self.storage.cancel_requests(ids)
        except StorageError as exc:  # the next poll tries again
            self.recorder.refused(exc)
            return
        for build_id, reason in requests.items():
            entry = self._running[build_id]
            self._terminate(entry, Outcome(BuildState.CANCELLED, reason or "cancelled"), now)

    def _read(self, entry: Running, fd: int) -> None:
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

    def _output_line(self, entry: Running, fd: int, line: bytes, final: bool = False) -> None:
        if final and not line:
            return
        assert entry.child is not None
        is_err = fd == entry.child.err_fd
        text = line.decode("utf-8", "replace").rstrip("\r")
        self._handle(entry, ("log", time.time(), logging.WARNING if is_err else logging.INFO,
                             "stderr" if is_err else "stdout", text, None))

    def _handle(self, entry: Running, frame: Frame) -> None:
        kind = frame[0]
        if kind == "log":
            _, created, level, name, message, exc_text = frame
            mask = self.masker.text
            record = LogRecord(
                _utc(created), level, clean_text(name, 200, mask),
                clean_text(message, MAX_MESSAGE, mask),
                None if exc_text is None else clean_text(exc_text, MAX_TRACEBACK, mask),
            )
            with entry.lock:
                entry.logs.append(record)
                entry.held_bytes += held_size(record)
            self.observer.build_log(entry.build, record)
            if (len(entry.logs) >= self.flush_records or holds_too_much(entry)) \
                    and not self.recorder.flush(entry):
                with entry.lock:
                    shed(entry)
        elif kind == "progress":
            _, group, current, total, message, created = frame
            if message is not None:
                message = clean_text(message, 1000, self.masker.text)
            item = ProgressItem(tuple(clean_text(g, 200, self.masker.text) for g in group),
                                current, total, message, _utc(created))
            with entry.lock:
                entry.progress[item.group] = item
            self.observer.build_progress(entry.build, item)
        elif kind == "done":
            entry.outcome = Outcome.from_frame(frame)
        elif kind == "end" and entry.child is not None:
            entry.child.build_over(frame)

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

    def _terminate(self, entry: Running, outcome: Outcome, now: float) -> None:
        assert entry.child is not None
        entry.stop = outcome
        entry.kill_at = now + self.kill_grace
        entry.child.signal_group(signal.SIGTERM)

    def _collect(self, entry: Running) -> None:
        """The child exited: drain its pipes, clean up its process group, record it."""
        child = entry.child
        assert child is not None
        for fd in list(entry.open_fds):
            self._read(entry, fd)
        for fd in list(entry.partial):
            self._output_line(entry, fd, entry.partial.pop(fd), final=True)
        # the exit status only matters when the child sent no outcome
        status = child.reap(need_status=entry.stop is None and entry.outcome is None)
        entry.child = None  # collected, its pipes closed
        entry.open_fds.clear()
        if entry.stop is not None:
            entry.outcome = entry.stop
        elif entry.outcome is None:
            entry.outcome = outcome_from_status(status)
        self._finish(entry)

    # -- storage -------------------------------------------------------------------------------

    def commit_outcomes(self) -> None:
        """At the end of a run: commit the outcomes the storage holds for its next write,
        trying one it refuses for ``outcome_retry`` seconds (this waits: call it where no
        build runs)."""
        self.recorder.commit_outcomes(lambda: self._stop_request is not None)

    def _flush_all(self) -> None:
        self._last_flush = time.monotonic()
        for entry in self._running.values():
            self.recorder.flush(entry)

    def _finish(self, entry: Running) -> None:
        assert entry.outcome is not None
        entry.outcome = entry.outcome.cleaned(self.masker)
        if entry.lost_records:
            with entry.lock:
                entry.logs.insert(0, LogRecord(
                    utcnow(), logging.ERROR, "jobcontrol",
                    f"{entry.lost_records} log records were lost while the storage refused "
                    f"writes",
                ))
        self._record(entry)

    def _record(self, entry: Running) -> None:
        """Record the build's outcome. Where the storage refuses it, the build stays in
        :attr:`_running`, and the loop tries again after a pause (serving the other builds
        meanwhile) for ``outcome_retry`` seconds; then :class:`OutcomeNotRecordedError`
        (at once where a stop was requested: the runner is asked to end)."""
        outcome = entry.outcome
        assert outcome is not None
        try:
            build = self.recorder.write_outcome(entry, outcome)
        except StorageError as exc:
            now = time.monotonic()
            if entry.record_by is None:
                entry.record_by = now + self.outcome_retry
            if now >= entry.record_by or self._stop_request is not None:
                raise self.recorder.not_recorded(
                    exc, ended(entry.build, outcome),
                    self.recorder.tried(now, entry.record_by)) from exc
            self.recorder.refused(exc)
            entry.record_at = min(self.recorder.retry_at, entry.record_by)  # a last try then
            return
        self.recorder.taken()
        if build.state is not outcome.state or build.reason != outcome.reason:
            # fenced off: someone else decided this build's fate first (abandoned, say);
            # the record stays as they left it (nothing of this runner's is written to it)
            logger.warning("build %s: runner finished with %s but the build was already "
                           "%s; its result was not recorded", build.id, outcome.state,
                           build.state)
        del self._running[entry.build.id]
        self._finished.append(build)
        self.observer.build_finished(build)
