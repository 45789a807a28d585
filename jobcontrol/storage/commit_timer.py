"""The bound on an outcome left uncommitted: a storage that leaves a build's outcome for its
next write to commit (``finish_build_with_logs(commit_later=True)``: one commit a build in a
run of quick builds, not two) commits it itself, here, :data:`PENDING_COMMIT_DELAY` after,
should no write have taken it by then. So no caller must remember to commit before it waits:
other processes see every outcome within that delay, whatever the caller does next.

One daemon thread per storage object, started on first use. A process forked from the owner
(a build's own process) gets a new timer of its own if it ever leaves an outcome pending.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: seconds an outcome may wait for the next write to commit it
PENDING_COMMIT_DELAY = 0.05
#: seconds between tries of outcomes a failed commit left unwritten
UNWRITTEN_RETRY = 1.0


class CommitTimer:
    """Calls ``commit`` once :meth:`arm` is older than its ``delay`` (unless :meth:`disarm`
    came first). ``commit`` returns True when nothing is left to write; else it is called
    again every ``retry`` seconds, until :meth:`close`."""

    def __init__(self, commit: Callable[[], bool], retry: float = UNWRITTEN_RETRY) -> None:
        self._commit = commit
        self._retry = retry
        self._start_fresh()

    def _start_fresh(self) -> None:
        self._pid = os.getpid()
        self._wake = threading.Condition()
        self._due: float | None = None
        #: when the thread wakes next by itself (inf: only when notified)
        self._wakes_at = math.inf
        self._thread: threading.Thread | None = None
        self._closed = False

    def arm(self, delay: float = PENDING_COMMIT_DELAY) -> None:
        """Something is pending: commit it ``delay`` seconds from now, unless it is due
        sooner already."""
        if self._pid != os.getpid():  # forked: the parent's thread did not come along
            self._start_fresh()
        with self._wake:
            if self._closed:
                return
            if self._due is None:
                self._due = time.monotonic() + delay
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="jobcontrol-commit-timer")
                self._thread.start()
            elif self._due < self._wakes_at:
                # only then: a thread woken at each quick build's outcome took the GIL
                # from the runner as often (more than the build's own SQL); one already
                # set to wake sooner looks at the new due time then
                self._wake.notify()

    def disarm(self) -> None:
        """Nothing is pending any more (a write committed it)."""
        with self._wake:
            self._due = None

    def close(self) -> None:
        """Stop the thread (the owner commits what is left itself)."""
        with self._wake:
            self._closed = True
            self._due = None
            self._wake.notify()
            thread = self._thread
        if (thread is not None and thread is not threading.current_thread()
                and self._pid == os.getpid()):
            thread.join()

    def _run(self) -> None:
        with self._wake:
            while not self._closed:
                if self._due is None:
                    self._wakes_at = math.inf
                    self._wake.wait()
                    continue
                left = self._due - time.monotonic()
                if left > 0:
                    self._wakes_at = self._due
                    self._wake.wait(left)
                    continue
                self._due = None
                # ``commit`` takes the storage's lock: never while holding ours, which
                # the storage's writers take (in :meth:`arm`) while holding theirs
                self._wake.release()
                try:
                    done = self._commit()
                except Exception:  # kept by the storage, tried again
                    log.exception("committing the outcomes left pending failed")
                    done = False
                finally:
                    self._wake.acquire()
                if not done and not self._closed and self._due is None:
                    self._due = time.monotonic() + self._retry
