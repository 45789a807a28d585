"""Builds, logs and statuses as text and as the JSON shapes of the CLI contract."""

from __future__ import annotations

from typing import Any

from jobcontrol.models import Build, LogRecord, ProgressItem
from jobcontrol.serialize import to_jsonable
from jobcontrol.text import visible
from jobcontrol.timeutil import format_duration, isoformat


def build_json(build: Build) -> dict[str, Any]:
    """``builds --format json``: one build's summary."""
    return {
        "id": build.id,
        "job": build.job_id,
        "state": build.state.value,
        "reason": build.reason,
        "created": isoformat(build.created),
        "started": isoformat(build.started),
        "finished": isoformat(build.finished),
        "duration": build.duration,
        "retry_of": build.retry_of,
    }


def build_detail_json(build: Build, progress: list[ProgressItem]) -> dict[str, Any]:
    """``show --format json``: the summary plus the return value, exception and the rest."""
    data = build_json(build)
    data.update({
        "retval": to_jsonable(build.retval),
        "retval_kind": build.result.kind if build.result else None,
        "exception": build.exception.to_dict() if build.exception else None,
        "progress": [progress_json(item) for item in progress],
        "dependency_builds": dict(build.dependency_builds),
        "host": build.host,
        "pid": build.pid,
        "pgid": build.pgid,
        "heartbeat": isoformat(build.heartbeat),
        "definition": build.definition,
        "cancel_requested": isoformat(build.cancel_requested),
        "cancel_reason": build.cancel_reason,
    })
    return data


def progress_json(item: ProgressItem) -> dict[str, Any]:
    return {"group": list(item.group), "current": item.current, "total": item.total,
            "message": item.message, "updated": isoformat(item.updated)}


def log_json(record: LogRecord) -> dict[str, Any]:
    """``logs --format json``: one JSON Lines record."""
    return {"seq": record.seq, "time": isoformat(record.time), "level": record.level_name,
            "logger": record.logger, "message": record.message, "exception": record.exception}


def log_line(record: LogRecord, build_id: int | None = None) -> str:
    """A log record as one (or, with an exception, several) lines of text."""
    stamp = record.time.strftime("%Y-%m-%d %H:%M:%S")
    prefix = f"#{build_id} " if build_id is not None else ""
    text = f"{prefix}{stamp} {record.level_name:<7} {visible(record.logger)}: {record.message}"
    if record.exception:
        text += "\n" + record.exception.rstrip()
    return text


def build_row(build: Build) -> list[Any]:
    """A row of the ``builds`` table."""
    return [
        build.id, build.job_id, build.state.value,
        build.started.strftime("%Y-%m-%d %H:%M:%S") if build.started else "",
        format_duration(build.duration), f"#{build.retry_of}" if build.retry_of else "",
        build.reason or "",
    ]


BUILD_HEADERS = ["id", "job", "state", "started (UTC)", "duration", "retry of", "reason"]
