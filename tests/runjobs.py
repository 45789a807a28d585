"""Jobs of the runs, parameters and backfill tests (copied beside each test's config)."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from jobcontrol.context import current_build, interval, scheduled_for


def typed(day: dt.date, limit: int = 0, ratio: float = 0.0, loud: bool = False,
          name: str = "") -> dict:
    """Returns what it was given, with the types it was given them as."""
    return {"day": day.isoformat(), "day_type": type(day).__name__, "limit": limit,
            "limit_type": type(limit).__name__, "ratio": ratio, "loud": loud, "name": name}


def instant(log: str = "") -> dict:
    """Returns its scheduled instant and interval; appends the instant to ``log``."""
    when, span = scheduled_for(), interval()
    if log:
        with open(log, "a") as out:
            out.write(f"{when.isoformat() if when else None}\n")
    build = current_build()
    return {"scheduled_for": None if when is None else when.isoformat(),
            "interval": None if span is None else [t.isoformat() for t in span],
            "run": None if build is None else build.run_id}


def instant_or_hang(log: str, hang_at: str, started: str) -> str:
    """Appends its instant to ``log``; at ``hang_at`` says so in ``started`` and waits to
    be killed."""
    when = scheduled_for()
    assert when is not None
    with open(log, "a") as out:
        out.write(f"{when.isoformat()}\n")
    if when.isoformat().startswith(hang_at):
        Path(started).write_text(str(os.getpid()))
        time.sleep(120)
    return when.isoformat()


def instant_unless(log: str, broken: str) -> dict:
    """:func:`instant`, failing while the file ``broken`` exists (a bug, fixed later)."""
    found = instant(log)
    if Path(broken).exists():
        raise RuntimeError(f"broken at {found['scheduled_for']}")
    return found
