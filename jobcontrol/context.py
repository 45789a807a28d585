"""What a running job can call: :func:`progress`, :func:`current_build`, :class:`SkipBuild`,
and, in a build of a scheduled instant (``run-due``, ``scheduler``, ``backfill``),
:func:`scheduled_for` and :func:`interval`.

A job is a plain function: outside a build these are harmless (``progress`` does nothing,
``current_build`` returns None), so jobs stay callable from tests and the shell.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobcontrol.models import Build

#: a function that receives (group, current, total, message, time) from progress()
ProgressSink = Callable[[tuple[str, ...], float, "float | None", "str | None", float], None]


class SkipBuild(Exception):
    """Raise from a job to say "nothing new": the build ends ``skipped``, not ``failed``.

    A skipped build never makes dependents outdated and is never consumed by ``!retval``.
    """

    def __init__(self, reason: str = "nothing to do") -> None:
        super().__init__(reason)
        self.reason = reason


class _Context:
    build: Build | None = None
    progress_sink: ProgressSink | None = None


_context = _Context()


def current_build() -> Build | None:
    """The build being run in this process, or None outside a build."""
    return _context.build


def scheduled_for() -> datetime | None:
    """The instant of the job's schedule this build is for (UTC): the instant ``run-due``
    or ``scheduler`` fired, or the one ``backfill`` is filling; None in a build that no
    schedule started (``build``, a web launch) and outside a build."""
    build = _context.build
    text = None if build is None else build.definition.get("scheduled_for")
    return None if text is None else datetime.fromisoformat(text)


def interval() -> tuple[datetime, datetime] | None:
    """The interval this scheduled build covers: from the schedule's instant before
    :func:`scheduled_for` to it (``0 3 * * *`` on 2026-12-02 covers 2026-12-01T03:00 to
    2026-12-02T03:00); None when :func:`scheduled_for` is None."""
    build = _context.build
    span = None if build is None else build.definition.get("interval")
    if not span:
        return None
    return datetime.fromisoformat(span[0]), datetime.fromisoformat(span[1])


def progress(
    current: float,
    total: float | None = None,
    message: str | None = None,
    group: str | Sequence[str] | None = None,
) -> None:
    """Report how far the job got: ``current`` of ``total`` (e.g. files, bytes, rows).

    ``group`` names a part of the work (``"download"`` or ``("download", "file.zip")``);
    groups form a tree whose parents sum their children. Without a group it is the whole
    build's progress. Cheap enough to call in a loop.
    """
    sink = _context.progress_sink
    if sink is None:
        return
    if group is None:
        path: tuple[str, ...] = ()
    elif isinstance(group, str):
        path = (group,)
    else:
        path = tuple(str(part) for part in group)
    sink(path, float(current), None if total is None else float(total),
         None if message is None else str(message), time.time())


def _activate(build: Build | None, sink: ProgressSink | None) -> tuple[Build | None,
                                                                   ProgressSink | None]:
    """Set the running build; returns the previous pair so it can be restored."""
    previous = (_context.build, _context.progress_sink)
    _context.build, _context.progress_sink = build, sink
    return previous
