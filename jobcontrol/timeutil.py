"""Time helpers: every stored time is timezone-aware UTC; durations in the config are text."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90"``, ``"30s"``, ``"10m"``, ``"1h30m"``, ``"2d"``, ``"500ms"``.

    Raises :class:`ValueError` with a message fit for a config error.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 10m or 1h, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return parse_duration(number)
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if text and pos == len(text):
            return total
    raise ValueError(f"expected a duration such as 30s, 10m or 1h30m, got {value!r}")


def format_duration(seconds: float | None) -> str:
    """``250ms``, ``2.5s``, ``42s``, ``5m``, ``3m05s``, ``2h01m``: short, for tables and reasons."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.2f}".rstrip("0").rstrip(".") + "s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m" if not secs else f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h" if not minutes else f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d" if not hours else f"{days}d{hours:02d}h"


def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).isoformat()


#: an age before now: ``90m``, ``24h``, ``7d``, ``2w``
_AGE = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
_AGE_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


#: a date, then the character that separates it from the time
_DATE_THEN = re.compile(r"\d{4}-\d{2}-\d{2}(.)")


def parse_iso(text: str) -> datetime:
    """An ISO 8601 time (``Z`` accepted; naive if it gives no offset). Python reads any
    character after a date as the separator, so ``2026-11-10-05:00`` (a date "at UTC-5")
    would be 05:00: anything but ``T`` or a space there is a ValueError."""
    found = _DATE_THEN.match(text)
    if found is not None and found.group(1) not in "Tt ":
        raise ValueError(f"{text!r}: a date and a time are separated by T or a space")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_time_or_age(raw: str, now: datetime) -> datetime:
    """``24h`` (that long before ``now``: ``m``, ``h``, ``d``, ``w``) or an ISO 8601 time
    (UTC unless it says otherwise, ``Z`` accepted); ValueError for anything else."""
    text = raw.strip()
    age = _AGE.fullmatch(text)
    if age:
        return now - timedelta(seconds=int(age.group(1)) * _AGE_SECONDS[age.group(2)])
    try:
        value = parse_iso(text)
    except ValueError:
        raise ValueError(f"must be like 24h, 7d or 2024-05-01T12:00, got {text[:50]!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def as_utc(value: datetime) -> datetime:
    """``value`` as timezone-aware UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
