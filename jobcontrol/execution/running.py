"""A build in flight on this machine, with what it produced that is not stored yet (and
the bound on what it may hold while the storage refuses writes)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from jobcontrol.execution.frames import FrameReader
from jobcontrol.execution.runner import ChildProcess, Outcome
from jobcontrol.models import Build, LogRecord, ProgressItem

#: bytes of log records (roughly) kept in memory for a build while the storage refuses
#: them; past this the oldest are dropped, and counted: an outage must not eat the memory
MAX_HELD_BYTES = 64 << 20
#: what a log record costs in memory besides its text (its object, time, logger)
_RECORD_OVERHEAD = 400


@dataclass
class Running:
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
    #: the size of ``logs`` in memory, roughly (see :data:`MAX_HELD_BYTES`)
    held_bytes: int = 0
    #: records dropped because the storage refused them too long
    lost_records: int = 0
    #: while the storage refuses the outcome: until when it is tried (``time.monotonic()``),
    #: and when next (the loop serves the other builds meanwhile)
    record_by: float | None = None
    record_at: float = 0.0
    #: held while ``logs`` and ``progress`` change or are written: an inline build's are
    #: written by the inline watcher thread too, while the job runs
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def held_size(record: LogRecord) -> int:
    """What a log record held in memory costs, roughly, in bytes."""
    return _RECORD_OVERHEAD + len(record.message) + len(record.exception or "")


def holds_too_much(entry: Running) -> bool:
    """Whether the build holds more log records than :data:`MAX_HELD_BYTES`."""
    return entry.held_bytes > MAX_HELD_BYTES


def shed(entry: Running) -> None:
    """Drop the oldest log records held past :data:`MAX_HELD_BYTES` (a tenth more, so
    that this is not done for each record), counting them."""
    if entry.held_bytes <= MAX_HELD_BYTES:
        return
    keep = MAX_HELD_BYTES - MAX_HELD_BYTES // 10
    dropped = 0
    for record in entry.logs:
        if entry.held_bytes <= keep:
            break
        entry.held_bytes -= held_size(record)
        dropped += 1
    del entry.logs[:dropped]
    entry.lost_records += dropped
