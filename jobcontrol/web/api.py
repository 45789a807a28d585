"""The JSON API under ``/api/v1/``: the CLI's JSON shapes, errors as JSON with a status.

Reads are GET; launching, cancelling, deleting, pausing and resuming are POST (CSRF token in the
``X-CSRFToken`` header, or a bearer token); a GET of them is 405.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask_wtf.csrf import generate_csrf

from jobcontrol.models import BuildState
from jobcontrol.present import (
    build_detail_json,
    build_json,
    job_detail_json,
    log_json,
    pause_json,
    progress_json,
    run_json,
    status_json,
)
from jobcontrol.web.filters import build_filters
from jobcontrol.web.helpers import (
    MAX_LIMIT,
    BadParameter,
    current_jc,
    flag,
    int_arg,
    level_arg,
)
from jobcontrol.web.launch import Launched, LaunchOptions, again, param_text, start
from jobcontrol.web.present import overall_percent

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def who() -> str:
    """Who asked, for the record of a cancel or a pause: the logged-in user, or just
    "web"."""
    return "web" if g.get("user") in (None, "local") else f"web user {g.user}"


def _body() -> Any:
    """The request's JSON object, or its form."""
    if not request.is_json:
        return request.form
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadParameter("the body must be a JSON object")
    return body


def launch_options(source: Any, trigger: str = "api") -> LaunchOptions:
    """The ``deps``, ``depending`` and ``if_outdated`` choices of a form or JSON body, and
    the parameters: a JSON body's ``params`` object, a form's ``param.NAME`` fields."""
    given = source.get("params") if request.is_json else {
        key[len("param."):]: value for key, value in source.items()
        if key.startswith("param.")}
    if given is None:
        given = {}
    if not isinstance(given, dict) or not all(
            isinstance(v, (str, int, float, bool)) for v in given.values()):
        raise BadParameter("params must be an object of names to values")
    return LaunchOptions(deps=flag(source, "deps"), depending=flag(source, "depending"),
                         if_outdated=flag(source, "if_outdated"),
                         params=tuple((str(k), param_text(v)) for k, v in given.items()),
                         trigger=trigger, by=who())


@bp.get("/csrf")
def csrf_token() -> Any:
    """A CSRF token for this session, to send back as the ``X-CSRFToken`` header."""
    return jsonify({"csrf_token": generate_csrf()})


@bp.get("/jobs")
def jobs() -> Any:
    tag = request.args.get("tag") or None
    jc = current_jc()
    queued = jc.storage.list_builds(states=[BuildState.QUEUED])
    return jsonify([status_json(s, [b for b in queued if b.job_id == s.job.id])
                    for s in jc.status(tag=tag)])


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> Any:
    jc = current_jc()
    data = job_detail_json(jc, job_id, import_error=True)
    [status] = jc.status([job_id])
    data["status"] = status_json(status)
    return jsonify(data)


@bp.get("/jobs/<job_id>/builds")
def job_builds(job_id: str) -> Any:
    current_jc().job(job_id)
    return _builds(job_id)


@bp.get("/builds")
def builds() -> Any:
    job_id = request.args.get("job") or None
    if job_id is not None:
        current_jc().job(job_id)
    return _builds(job_id)


def _builds(job_id: str | None) -> Any:
    """The builds the filters of :mod:`jobcontrol.web.filters` match, newest first: a page
    of them (``page``, ``limit``) as a list; the total in ``X-Total-Count``."""
    filters = build_filters(default_limit=20)
    query = filters.query
    if job_id is not None:  # the job of the path
        query = replace(query, job_ids=tuple(j for j in query.job_ids or (job_id,)
                                             if j == job_id))
    found, total = current_jc().search_builds(query, limit=filters.limit,
                                              offset=filters.offset)
    response = jsonify([build_json(b) for b in found])
    response.headers["X-Total-Count"] = str(total)
    return response


@bp.get("/builds/<int:build_id>")
def build(build_id: int) -> Any:
    jc = current_jc()
    found = jc.get_build(build_id)
    return jsonify(build_detail_json(found, jc.progress(build_id)))


@bp.get("/builds/<int:build_id>/logs")
def logs(build_id: int) -> Any:
    """Log records after the ``after`` cursor (a ``seq``); poll again with the returned
    ``after`` to tail a running build until ``finished``. With ``before`` (a ``seq``) or
    ``end=1``: the last ``limit`` records before it, or of the whole log."""
    jc = current_jc()
    after = int_arg("after", 0, low=0) or 0
    before = int_arg("before", low=1)
    limit = int_arg("limit", 1000, low=1, high=10_000) or 1000
    backwards = before is not None or flag(request.args, "end")
    if backwards and request.args.get("after"):
        raise BadParameter("give after, or before/end, not both")
    # the state first: records read after it include every line a finished build wrote
    state = jc.get_build(build_id).state
    if backwards:
        records = jc.storage.get_logs_before(build_id, limit=limit, before_seq=before,
                                             min_level=level_arg())
        after = records[-1].seq if records else (before or 1) - 1
    else:
        records = jc.logs(build_id, min_level=level_arg(), after_seq=after, limit=limit)
    return jsonify({
        "build": build_id,
        "state": state.value,
        "finished": state.finished,
        "records": [log_json(r) for r in records],
        "after": records[-1].seq if records else after,
    })


@bp.get("/builds/<int:build_id>/progress")
def progress(build_id: int) -> Any:
    jc = current_jc()
    found = jc.get_build(build_id)
    items = jc.progress(build_id)
    return jsonify({"build": build_id, "state": found.state.value,
                    "percent": overall_percent(items),
                    "items": [progress_json(item) for item in items]})


@bp.get("/runs")
def runs() -> Any:
    """The latest runs, newest first (``?job=`` of a job's builds; ``limit``, ``before``),
    each with its builds' ids and states."""
    job_id = request.args.get("job") or None
    found = current_jc().runs(job_id=job_id,
                              limit=int_arg("limit", 20, low=1, high=MAX_LIMIT),
                              before_id=int_arg("before", low=1))
    return jsonify([run_json(view, builds=False) for view in found])


@bp.get("/runs/<int:run_id>")
def run(run_id: int) -> Any:
    """One run with its builds' summaries."""
    return jsonify(run_json(current_jc().get_run(run_id)))


@bp.get("/graph")
def graph() -> Any:
    return jsonify({
        s.job.id: {"dependencies": list(s.job.dependencies), "last_state": s.last_state,
                   "outdated": s.outdated.outdated}
        for s in current_jc().status()
    })


@bp.post("/jobs/<job_id>/launch")
def launch_job(job_id: str) -> Any:
    """Start ``build JOB`` in the background: 202 with the first build it started."""
    jc = current_jc()
    jc.job(job_id)
    return _launched(start(jc, job_id, launch_options(_body())))


def _launched(started: Launched) -> Any:
    """202 with the first build a launch started (null: none), its process and message."""
    jc = current_jc()
    first = jc.get_build(started.build_id) if started.build_id is not None else None
    response = jsonify({"build": build_json(first) if first else None, "pid": started.pid,
                        "message": started.message})
    response.status_code = 202
    return response


@bp.post("/jobs/<job_id>/pause")
def pause(job_id: str) -> Any:
    """Pause a job (``jobcontrol pause``): ``{"reason": ...}`` optional; 200 with the pause
    in force and whether this request made it."""
    reason = _body().get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadParameter("reason must be a string")
    paused, made = current_jc().pause(job_id, by=who(), reason=reason or None)
    return jsonify({"pause": pause_json(paused), "paused_now": made})


@bp.post("/jobs/<job_id>/resume")
def resume(job_id: str) -> Any:
    """Resume a job: 200 with the pause it ended (null: it was not paused)."""
    return jsonify({"pause": pause_json(current_jc().resume(job_id, by=who()))})


@bp.post("/builds/<int:build_id>/cancel")
def cancel(build_id: int) -> Any:
    reason = _body().get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadParameter("reason must be a string")
    cancelled = current_jc().cancel(build_id, by=who(), reason=reason)
    return jsonify({"build": build_json(cancelled)})


@bp.post("/builds/<int:build_id>/rerun")
def rerun(build_id: int) -> Any:
    """A new build of the build's job with its parameters: 202 as a launch."""
    return _launched(again(current_jc(), build_id, retry=False, trigger="api", by=who()))


@bp.post("/builds/<int:build_id>/retry")
def retry(build_id: int) -> Any:
    """A failed, abandoned or cancelled build retried (``retry_of``, in its run): 202 as a
    launch; 409 for a build of another state or retried already."""
    return _launched(again(current_jc(), build_id, retry=True, trigger="api", by=who()))


@bp.post("/builds/<int:build_id>/delete")
@bp.delete("/builds/<int:build_id>")
def delete(build_id: int) -> Any:
    deleted = current_jc().delete_build(build_id)
    return jsonify({"deleted": build_json(deleted)})
