"""What the CLI and the web show: builds, logs, statuses and jobs as the JSON shapes of the
machine-readable contract, and the text lines and table rows of the CLI.

Each shape is written once, here; ``jobcontrol.cli`` and ``jobcontrol.web`` both render
through it. The JSON keys and their order are a promise (``--format json`` and ``/api/v1/``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobcontrol.errors import JobImportError
from jobcontrol.models import (
    Build,
    JobPause,
    LogRecord,
    ProgressItem,
    ScheduledRun,
    WorkerRecord,
)
from jobcontrol.rules import graph as graphs
from jobcontrol.serialize import to_jsonable
from jobcontrol.text import visible
from jobcontrol.timeutil import format_duration, isoformat

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from jobcontrol.config import JobDefinition
    from jobcontrol.core import JobControl, JobStatus
    from jobcontrol.runs import RunView
    from jobcontrol.scheduler import DueReport


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
        "run": build.run_id,
        "params": build.params,
    }


def run_json(view: RunView, *, builds: bool = True) -> dict[str, Any]:
    """``runs --format json`` (without the builds' summaries: their ids and states) and
    ``show --run --format json`` (with them)."""
    run = view.run
    data: dict[str, Any] = {
        "id": run.id,
        "state": view.state.value,
        "trigger": run.trigger.value,
        "by": run.by,
        "created": isoformat(run.created),
        "targets": list(run.targets),
        "params": run.params,
        "note": run.note,
    }
    if builds:
        data["builds"] = [build_json(build) for build in view.builds]
    else:
        data["builds"] = [{"id": b.id, "job": b.job_id, "state": b.state.value}
                          for b in view.builds]
    return data


def run_line(view: RunView) -> str:
    """One run as ``runs`` lists it: id, state, trigger, who, when, targets, builds."""
    run = view.run
    built = ", ".join(f"#{b.id} {b.job_id} {b.state}" for b in view.builds) or "no build"
    params = "".join(f" {job}({', '.join(f'{k}={v}' for k, v in values.items())})"
                     for job, values in run.params.items())
    return (f"run #{run.id} {view.state}: {run.trigger} by {run.by} at "
            f"{isoformat(run.created)}, {' '.join(run.targets)}{params}: {built}")


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
        "worker": build.worker_id,
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


def status_json(status: JobStatus, queued: Sequence[Build] = ()) -> dict[str, Any]:
    """``status --format json``: one job's status; ``queued``: its builds waiting for a
    worker."""
    last_success = status.last_success
    return {
        "job": status.job.id,
        "title": status.job.title,
        "command": status.job.command_json(),
        "last_build": status.last_build.id if status.last_build else None,
        "last_state": status.last_state,
        "last_success": last_success.id if last_success else None,
        "last_success_time": isoformat(last_success.finished) if last_success else None,
        "outdated": status.outdated.outdated,
        "outdated_reasons": list(status.outdated.reasons),
        "outdated_notes": list(status.outdated.notes),
        "running": list(status.running),
        "queued": sorted(build.id for build in queued),
        "oldest_queued": isoformat(min((b.created for b in queued if b.created), default=None)),
        "next_run": isoformat(status.next_run),
        "last_scheduled": scheduled_run_json(status.last_scheduled),
        "stale": status.stale,
        "tags": list(status.job.tags),
        "paused": pause_json(status.paused),
    }


def worker_json(worker: WorkerRecord, builds: Sequence[Build], now: datetime
                ) -> dict[str, Any]:
    """``workers --format json``: one worker and the builds it runs."""
    return {"id": worker.id, "host": worker.host, "pid": worker.pid,
            "started": isoformat(worker.started), "last_seen": isoformat(worker.heartbeat),
            "last_seen_age": round((now - worker.heartbeat).total_seconds(), 3),
            "queues": list(worker.queues),
            "builds": [{"id": b.id, "job": b.job_id} for b in builds]}


def pause_json(pause: JobPause | None) -> dict[str, Any] | None:
    """A job's pause: who paused it, when and why (and who resumed it, when)."""
    if pause is None:
        return None
    return {"job": pause.job_id, "paused": isoformat(pause.paused), "by": pause.paused_by,
            "reason": pause.reason, "resumed": isoformat(pause.resumed),
            "resumed_by": pause.resumed_by}


def scheduled_run_json(run: ScheduledRun | None) -> dict[str, Any] | None:
    """A scheduled instant taken on: when, what became of it, its build."""
    if run is None:
        return None
    return {"scheduled_for": isoformat(run.scheduled_for), "outcome": run.outcome,
            "build": run.build_id, "host": run.host}


def job_json(job: JobDefinition) -> dict[str, Any]:
    """``jobs --format json``: a job's definition (``!retval`` shown as ``{"!retval": job}``)."""
    data = job.snapshot()
    data["location"] = str(job.location)
    return data


def job_detail_json(jc: JobControl, job_id: str, *, import_error: bool = False
                    ) -> dict[str, Any]:
    """``job JOB --format json``: the definition, the function's signature and docstring,
    and the dependents. A function that does not import raises :class:`JobImportError`;
    with ``import_error`` (the web's shape) it is reported under that key instead."""
    from jobcontrol.importing import describe_callable

    job = jc.job(job_id)
    data = job_json(job)
    signature: str | None = None
    doc: str | None = None
    failure = None
    try:
        if job.shell is None:  # a shell job's command is all there is to show
            signature, doc = describe_callable(jc.import_function(job_id))
    except JobImportError as error:
        if not import_error:
            raise
        failure = str(error)
    data.update({"signature": signature, "docstring": doc})
    if import_error:
        data["import_error"] = failure
    data["dependents"] = graphs.dependents_map(jc.config.dependencies).get(job_id, [])
    return data


def report_json(report: DueReport) -> dict[str, Any]:
    """``run-due --format json``: every instant it took on, and what became of it (a dry
    run: ``due`` and ``missed`` it would take on; the rest empty)."""
    return {
        "dry_run": report.dry_run,
        "due": [{"job": job, "scheduled_for": isoformat(when)} for job, when in report.due],
        "started": [{"job": job, "scheduled_for": isoformat(when), "build": build_json(build)}
                    for job, when, build in report.started],
        "overlaps": [{"job": job, "scheduled_for": isoformat(when), "build": build_json(build)}
                     for job, when, build in report.overlaps],
        "not_built": [{"job": job, "scheduled_for": isoformat(when), "reason": reason}
                      for job, when, reason in report.not_built],
        "missed": [{"job": job, "scheduled_for": isoformat(when)}
                   for job, when in report.missed],
        "taken_elsewhere": report.taken_elsewhere,
        "errors": [str(error) for error in report.errors],
    }
