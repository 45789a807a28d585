"""Inline builds (``isolation: inline``): run in the caller's own process and thread, one
at a time, for speed where isolation is not wanted.

What a child process gives a build for free is done here with signals: a timeout raises in
the job through SIGALRM; a cancel request, found by a watcher thread (which also beats the
heartbeats while the executor's loop waits for the inline build to end, and writes the
build's log records as they come, for ``logs --follow``), through SIGUSR1.
The :class:`~jobcontrol.execution.local.LocalExecutor` hands each frame the job reports to
its own handler and records the outcome, as for a build in a child process.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobcontrol.errors import StorageError
from jobcontrol.execution.runner import BuildInterrupted, Frame, LineWriter, Outcome, execute_job
from jobcontrol.models import BuildState
from jobcontrol.secrets import Masker
from jobcontrol.storage.base import Storage
from jobcontrol.timeutil import format_duration

if TYPE_CHECKING:
    from jobcontrol.execution.running import Running


class InlineBuilds:
    """The inline builds of one executor (see module docstring).

    ``handle(entry, frame)`` takes what the job reports, ``finish(entry)`` records its
    outcome; the watcher beats the heartbeats of ``running_ids()`` (the executor's forked
    builds too: its loop waits for the inline build) every ``heartbeat_interval``, looks
    for cancel requests every ``cancel_poll_interval`` and has ``flush(entry)`` write what
    the build reported every ``flush_interval``, telling ``refused(exc)`` of a storage that
    fails.
    """

    def __init__(
        self, storage: Storage, masker: Masker, *,
        handle: Callable[[Running, Frame], None], finish: Callable[[Running], None],
        running_ids: Callable[[], list[int]], refused: Callable[[StorageError], None],
        flush: Callable[[Running], object], heartbeat_interval: float,
        cancel_poll_interval: float, flush_interval: float,
    ) -> None:
        self.storage = storage
        self.masker = masker
        self.handle = handle
        self.finish = finish
        self.running_ids = running_ids
        self.refused = refused
        self.flush = flush
        self.heartbeat_interval = heartbeat_interval
        self.cancel_poll_interval = cancel_poll_interval
        self.flush_interval = flush_interval
        #: the inline build running (None: none)
        self.current: Running | None = None
        self._watcher: _InlineWatcher | None = None
        #: the inline build a cancel request was found for (read by the SIGUSR1 handler)
        self._cancel: tuple[int, str] | None = None
        #: SIGUSR1's handler before the first inline build took it (restored by close())
        self._usr1_before: tuple[Any] | None = None
        #: stdout/stderr writers of inline builds that ended, for the next ones
        self._writers: list[tuple[LineWriter, LineWriter]] = []

    def run(self, entry: Running, func: Callable[..., Any], args: tuple[Any, ...],
            kwargs: dict[str, Any], result_mode: str) -> None:
        """Run the build to its end, and record it. A timeout, stop or cancel raises
        :class:`BuildInterrupted` only while :attr:`current` is this build, which is set
        just before the ``try`` that makes it the outcome, and unset first thing after."""
        in_main = threading.current_thread() is threading.main_thread()
        if in_main and self._usr1_before is None:
            # installed once, kept until close(): per build it cost as much as a quick job
            self._usr1_before = (signal.signal(signal.SIGUSR1, self._on_cancel),)

        def emit(frame: Frame) -> None:
            self.handle(entry, frame)

        old_alarm = None
        writers: tuple[LineWriter, LineWriter] | None = None
        self.current = entry
        try:
            if entry.timeout and in_main:
                reason = f"timed out after {format_duration(entry.timeout)}"

                def on_alarm(signum: int, frame: object) -> None:
                    if self.current is entry:  # not once the build is over
                        raise BuildInterrupted(BuildState.FAILED, reason)

                old_alarm = signal.signal(signal.SIGALRM, on_alarm)
                signal.setitimer(signal.ITIMER_REAL, entry.timeout)
            self._watch()
            writers = stdout, stderr = self._writers_for(emit)
            # print() is captured as in a child; output of subprocesses is not (no fork)
            saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = stdout, stderr
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
            self.current = None  # first: no interruption is raised for it from here on
            if old_alarm is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old_alarm)
            if writers is not None:
                for writer in writers:
                    writer.detach_emit()
                self._writers.append(writers)
        self.finish(entry)

    def close(self) -> None:
        """Stop the watcher thread and give SIGUSR1 its handler back (a later inline build
        takes them up again)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stopped.set()
        before, self._usr1_before = self._usr1_before, None
        if before is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, before[0])

    def _writers_for(self, emit: Callable[[Frame], None]) -> tuple[LineWriter, LineWriter]:
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

    def _watch(self) -> None:
        """Start the thread that beats inline builds' heartbeats and finds their cancel
        requests (one for the executor's life: a thread per build would cost more than a
        quick job)."""
        if self._watcher is None:
            self._watcher = _InlineWatcher(self)
            self._watcher.start()

    def cancelled(self, build_id: int, reason: str) -> None:
        """Called by the watcher thread: interrupt the inline build in the main thread."""
        if threading.current_thread() is threading.main_thread():  # pragma: no cover
            return
        self._cancel = (build_id, reason)
        main = threading.main_thread()
        if main.ident is not None:
            signal.pthread_kill(main.ident, signal.SIGUSR1)

    def _on_cancel(self, signum: int, frame: object) -> None:
        request, self._cancel = self._cancel, None
        if request is not None and self.current is not None \
                and self.current.build.id == request[0]:  # not a build started since
            raise BuildInterrupted(BuildState.CANCELLED, request[1])


class _InlineWatcher(threading.Thread):
    """Beside inline builds (which run in the caller's thread): beats the heartbeat of the
    one running (and of the builds forked before it, whose loop it holds up) and looks for
    a request to cancel it."""

    def __init__(self, inline: InlineBuilds) -> None:
        super().__init__(name="jobcontrol-inline-watcher", daemon=True)
        self.inline = inline
        self.stopped = threading.Event()

    def run(self) -> None:
        inline = self.inline
        tick = min(inline.heartbeat_interval, inline.cancel_poll_interval,
                   inline.flush_interval)
        last_beat = last_poll = time.monotonic()
        while not self.stopped.wait(tick):
            entry = inline.current
            if entry is None:
                continue
            inline.flush(entry)  # its log so far, for `logs --follow` (refusals: told)
            build_id = entry.build.id
            try:
                reason = None
                if time.monotonic() - last_beat >= inline.heartbeat_interval:
                    last_beat = time.monotonic()
                    # the executor's forked builds too: the loop that beats them waits
                    # for the inline build to end (a stale heartbeat is a hung runner)
                    ended = inline.storage.heartbeat(inline.running_ids())
                    if build_id in ended:  # ended elsewhere: stop it
                        reason = "stopped: ended elsewhere"
                if reason is None and time.monotonic() - last_poll >= \
                        inline.cancel_poll_interval:
                    last_poll = time.monotonic()
                    reason = inline.storage.cancel_requests([build_id]).get(build_id)
            except StorageError as exc:  # the next tick tries again
                inline.refused(exc)
                continue
            if reason is not None:
                inline.cancelled(build_id, reason or "cancelled")
