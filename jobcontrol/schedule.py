"""Cron schedules: which instants of a job are due, by its catch-up policy.

A job's ``schedule`` is a cron expression (5 fields, ``@hourly``-style aliases, or 6 fields
with seconds last, as croniter reads them) in its ``timezone``. Instants are computed by
croniter in that zone, so daylight saving time is croniter's: an instant that does not exist
(02:30 on the spring-forward night in Europe/Berlin) comes at the first time after the gap
(03:00), and one that happens twice (02:30 on the fall-back night) is due twice, once in
each offset. Everything here is pure: the caller gives "now" (a test gives any clock).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

#: what ``run-due`` does with instants it finds past: run the last one only, run every one,
#: or run only one that is on time (within ``misfire_grace``)
CATCHUP_POLICIES = ("latest", "all", "none")
#: most instants of one job ``catchup: all`` runs in one call (a machine off for a month
#: with a job every minute must not start 43,200 builds in a row)
MAX_CATCHUP = 100


@dataclass(frozen=True)
class ScheduleOptions:
    """``schedule_options:``: how a due instant is built, and what happens to late ones."""

    #: build the job's dependencies first (``build --deps``)
    deps: bool = True
    #: build only if the job is outdated (``build --if-outdated``)
    if_outdated: bool = False
    #: ``latest``, ``all`` or ``none`` (see :data:`CATCHUP_POLICIES`)
    catchup: str = "latest"
    #: seconds after its instant that a run still counts as on time
    misfire_grace: float = 300.0

    def __post_init__(self) -> None:
        if self.catchup not in CATCHUP_POLICIES:
            raise ValueError(f"catchup must be one of {CATCHUP_POLICIES}, got {self.catchup!r}")
        if self.misfire_grace < 0:
            raise ValueError(f"misfire_grace must be >= 0, got {self.misfire_grace!r}")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def too_late(self, instant: datetime, now: datetime) -> bool:
        """Whether a run of ``instant`` starting at ``now`` is to be recorded missed:
        ``catchup: none`` and later than ``misfire_grace``."""
        return self.catchup == "none" and (now - instant).total_seconds() > self.misfire_grace


@dataclass(frozen=True)
class Schedule:
    """A job's ``schedule``, ``timezone`` and ``schedule_options``."""

    expression: str
    timezone: str = "UTC"
    options: ScheduleOptions = field(default_factory=ScheduleOptions)

    def __post_init__(self) -> None:
        problem = cron_problem(self.expression) or timezone_problem(self.timezone)
        if problem:
            raise ValueError(problem)

    def as_json(self) -> dict[str, Any]:
        return {"cron": self.expression, "timezone": self.timezone,
                "options": self.options.as_json()}

    def _iter(self, start: datetime) -> Any:
        from zoneinfo import ZoneInfo

        from croniter import croniter

        return croniter(self.expression, start.astimezone(ZoneInfo(self.timezone)))

    def next_after(self, when: datetime) -> datetime:
        """The first instant strictly after ``when`` (UTC)."""
        return _utc(self._iter(when).get_next(datetime))

    def latest_at(self, when: datetime) -> datetime:
        """The last instant at or before ``when`` (UTC)."""
        following = self.next_after(when)
        instants = self._iter(following)
        return _utc(instants.get_prev(datetime))

    def previous_before(self, when: datetime) -> datetime:
        """The last instant strictly before ``when`` (UTC): where the interval an instant
        ``when`` covers begins."""
        return _utc(self._iter(when).get_prev(datetime))

    def instants(self, after: datetime, until: datetime, limit: int | None = None
                 ) -> list[datetime]:
        """The instants in ``(after, until]``, oldest first; only the last ``limit`` of them
        (found walking back from ``until``: a long gap costs ``limit`` steps, not one a
        minute since ``after``)."""
        if limit is None:
            found: list[datetime] = []
            forward = self._iter(after)
            while (instant := _utc(forward.get_next(datetime))) <= until:
                found.append(instant)
            return found
        newest = self.latest_at(until)
        if newest <= after:
            return []
        found = [newest]
        backward = self._iter(newest)
        while len(found) < limit:
            instant = _utc(backward.get_prev(datetime))
            if instant <= after:
                break
            found.append(instant)
        return found[::-1]


@dataclass(frozen=True)
class DueRuns:
    """What one look at a job's schedule decided: instants to run, and late ones to record
    as missed."""

    run: list[datetime]
    missed: list[datetime]


def due_runs(schedule: Schedule, last: datetime | None, now: datetime) -> DueRuns:
    """The instants of ``schedule`` due at ``now``, given the latest one taken on before.

    Without a ``last`` (a job seen for the first time) only instants within the misfire
    grace count: a new schedule does not replay the past. Then by ``catchup``: ``all`` runs
    every instant since ``last`` (at most :data:`MAX_CATCHUP`, the latest), ``latest`` runs
    the newest and skips the rest silently, ``none`` runs the newest only if it is on time
    and otherwise records it ``missed``.
    """
    grace = schedule.options.misfire_grace
    since = last if last is not None else _minus(now, grace)
    if since >= now:
        return DueRuns([], [])
    policy = schedule.options.catchup
    if policy == "all":
        return DueRuns(schedule.instants(since, now, limit=MAX_CATCHUP), [])
    newest = schedule.latest_at(now)
    if newest <= since:
        return DueRuns([], [])
    if schedule.options.too_late(newest, now):
        return DueRuns([], [newest])
    return DueRuns([newest], [])


#: the fields of a cron expression in order (seconds last, as croniter reads 6 fields), each
#: with the range of its numbers and the names it also takes
CRON_FIELDS = (("minute", 0, 59, ""), ("hour", 0, 23, ""), ("day", 1, 31, ""),
               ("month", 1, 12, ", jan-dec"), ("weekday", 0, 7, ", sun-sat"),
               ("second", 0, 59, ""))


def cron_problem(expression: Any) -> str | None:
    """Why ``expression`` is not a cron schedule croniter takes, or None: the field at
    fault, when one is."""
    from croniter import croniter

    if not isinstance(expression, str) or not expression.strip():
        return "a schedule is a cron expression such as '0 * * * *' or '@daily'"
    if croniter.is_valid(expression):
        return None
    fields = expression.split()
    shape = ("5 fields (minute hour day month weekday), 6 with seconds last, or an alias "
             "such as @hourly")
    if expression.startswith("@") or len(fields) not in (5, 6):
        count = "" if expression.startswith("@") else f"{len(fields)} fields, "
        return f"bad cron expression {expression!r}: {count}expected {shape}"
    for index, value in enumerate(fields):
        alone = ["*"] * len(fields)
        alone[index] = value
        if croniter.is_valid(" ".join(alone)):
            continue
        name, low, high, names = CRON_FIELDS[index]
        # the numbers of values and range ends (not steps): the ones outside the range
        numbers = [int(n) for n in re.findall(r"(?<![/\d])\d+", value)]
        outside = [n for n in numbers if not low <= n <= high]
        why = (f"is out of range {low}-{high}" if outside
               else f"is not valid (use {low}-{high}{names}, *, a-b, */n or a,b)")
        return f"bad cron expression {expression!r}: the {name} field {value!r} {why}"
    return f"bad cron expression {expression!r}: expected {shape}"


def timezone_problem(name: Any) -> str | None:
    """Why ``name`` is not an IANA time zone, or None."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name:
        return "a timezone is an IANA name such as 'Europe/Berlin' or 'UTC'"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown timezone {name!r} (an IANA name such as 'Europe/Berlin' or 'UTC')"
    return None


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _minus(when: datetime, seconds: float) -> datetime:
    from datetime import timedelta

    return when - timedelta(seconds=seconds)
