"""The HTML pages: jobs, one job, one build (followed live), launch, the whole graph."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from flask import (
    Blueprint,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from jobcontrol.execution.queued import queue_summary
from jobcontrol.models import Build, BuildState
from jobcontrol.present import job_detail_json
from jobcontrol.rules.graph import dependents_map
from jobcontrol.runs import RETRIABLE
from jobcontrol.text import one_line
from jobcontrol.web.api import launch_options, who
from jobcontrol.web.chart import CHART_BUILDS, duration_chart
from jobcontrol.web.helpers import (
    MAX_LIMIT,
    BadParameter,
    current_jc,
    flag,
    int_arg,
    level_arg,
    states_arg,
)
from jobcontrol.web.launch import again, start
from jobcontrol.web.logview import LOG_PAGE, has_newer, log_text, new_records, read_page
from jobcontrol.web.present import (
    history_strip,
    import_errors,
    layered_layout,
    neighbourhood,
    overall_percent,
    progress_rows,
    retry_chain,
    retval_text,
)

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

bp = Blueprint("pages", __name__)

#: builds a job's history strip on the jobs page shows
HISTORY_STRIP = 20
#: the builds that consumed a build its page lists at most (the oldest)
CONSUMED_BY = 50
#: the build page's level filter: (label, level), all first
LOG_FILTER_LEVELS = [("all", 0), ("DEBUG", 10), ("INFO", 20), ("WARNING", 30), ("ERROR", 40),
                     ("CRITICAL", 50)]


def _state_classes(statuses: list[Any]) -> dict[str, str]:
    return {s.job.id: f"state-{s.last_state}" + (" outdated" if s.outdated.outdated else "")
            for s in statuses}


@bp.get("/")
def jobs() -> Any:
    jc = current_jc()
    tag = request.args.get("tag") or None
    statuses = jc.status(tag=tag)
    running = {}
    for status in statuses:
        for build_id in status.running:
            items = jc.progress(build_id)
            message = next((i.message for i in items if i.group == () and i.message), None)
            running[build_id] = (overall_percent(items), message)
    tags = sorted({t for job in jc.config.jobs.values() for t in job.tags})
    # the strips: every shown job's newest builds in one query, oldest first as drawn
    recent = jc.storage.recent_builds([s.job.id for s in statuses], per_job=HISTORY_STRIP)
    build_url = url_for("pages.build", build_id=0).removesuffix("0")
    history = {job_id: history_strip(stubs[::-1], build_url) for job_id, stubs in recent.items()}
    return render_template("jobs.html", statuses=statuses, running=running, tags=tags, tag=tag,
                           history=history, import_errors=import_errors(jc, statuses),
                           queue_summary=queue_summary(jc.storage))


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> Any:
    jc = current_jc()
    detail = job_detail_json(jc, job_id, import_error=True)
    states = states_arg()
    limit = int_arg("limit", 20, low=1, high=MAX_LIMIT) or 20
    before = int_arg("before", low=1)
    # one more than shown: whether an older page exists
    found = jc.builds(job_id, states=states, limit=limit + 1, before_id=before)
    builds, older = found[:limit], len(found) > limit
    statuses = jc.status()
    [status] = [s for s in statuses if s.job.id == job_id]
    drawing = layered_layout(neighbourhood(jc.config.dependencies, job_id),
                             _state_classes(statuses), current=job_id)
    stubs = jc.storage.build_stubs(job_id, limit=CHART_BUILDS)[::-1]  # oldest first
    chart = duration_chart(stubs, url_for("pages.build", build_id=0).removesuffix("0"),
                           jc.storage.now())
    definition = {k: v for k, v in detail.items()
                  if k not in ("signature", "docstring", "import_error", "dependents",
                               "location")}
    return render_template(
        "job.html", job=jc.job(job_id), detail=detail, status=status, builds=builds,
        pauses=jc.pause_history(job_id, limit=5),
        older=older, limit=limit, states=[s.value for s in states or []],
        all_states=[s.value for s in BuildState], drawing=drawing, chart=chart,
        chart_count=len(stubs),
        definition_yaml=yaml.safe_dump(definition, sort_keys=False, allow_unicode=True),
    )


@bp.route("/jobs/<job_id>/launch", methods=["GET", "POST"])
def launch_page(job_id: str) -> Any:
    jc = current_jc()
    job = jc.job(job_id)
    if request.method == "GET":
        # the plan of what is ticked (``?plan=1`` and the boxes: the form's Preview button);
        # first shown with deps ticked, the Run button's choice
        chosen = request.args if flag(request.args, "plan") else {"deps": "1"}
        ticked = {name: flag(chosen, name) for name in ("deps", "depending", "if_outdated")}
        plan = jc.plan(job_id, **ticked)
        typed = {key[len("param."):]: value for key, value in request.args.items()
                 if key.startswith("param.")}
        return render_template("launch.html", job=job, plan=plan, ticked=ticked, typed=typed,
                               pauses=jc.pauses(step.job_id for step in plan))
    if flag(request.form, "preview"):  # the plan of the ticked boxes (no token in the URL)
        shown: dict[str, Any] = {name: 1 for name in ("deps", "depending", "if_outdated")
                                 if flag(request.form, name)}
        # the values typed stay in the form shown again
        shown.update((key, value) for key, value in request.form.items()
                     if key.startswith("param."))
        return redirect(url_for("pages.launch_page", job_id=job_id, plan=1, **shown,
                                _anchor="plan"), 303)
    started = start(jc, job_id, launch_options(request.form, trigger="web"))
    flash(started.message)
    if started.build_id is None:
        return redirect(url_for("pages.job", job_id=job_id), 303)
    # this launch's run: its builds together, as they start (a plain redirect: Back returns
    # to the page the Run button was on)
    run_id = jc.get_build(started.build_id).run_id
    if run_id is None:
        return redirect(url_for("pages.build", build_id=started.build_id), 303)
    return redirect(url_for("pages.run", run_id=run_id), 303)


@bp.post("/jobs/<job_id>/pause")
def pause(job_id: str) -> Any:
    paused, made = current_jc().pause(job_id, by=who(),
                                      reason=request.form.get("reason") or None)
    flash(f"{job_id}: {'' if made else 'already '}{paused.describe()}")
    return redirect(url_for("pages.job", job_id=job_id), 303)


@bp.post("/jobs/<job_id>/resume")
def resume(job_id: str) -> Any:
    ended = current_jc().resume(job_id, by=who())
    flash(f"{job_id}: resumed" if ended else f"{job_id}: not paused")
    return redirect(url_for("pages.job", job_id=job_id), 303)


@bp.get("/builds/<int:build_id>")
def build(build_id: int) -> Any:
    jc = current_jc()
    found = jc.get_build(build_id)
    level = level_arg()
    after, before = int_arg("after", low=0), int_arg("before", low=1)
    if after is not None and before is not None:
        raise BadParameter("give after or before, not both")
    page = read_page(jc.storage, build_id, min_level=level, after=after, before=before)
    before_ids, after_ids = retry_chain(jc, found)
    retval, retval_kind = retval_text(found)
    return render_template(
        "build.html", build=found, page=page, records=page.records, level=level,
        progress=progress_rows(jc.progress(build_id)), retval=retval, retval_kind=retval_kind,
        retries_before=before_ids, retries_after=after_ids, then=_then_job(jc),
        retriable=_retriable(jc, found), consumed_by=jc.storage.consumers(
            build_id, found.job_id, dependents_map(jc.config.dependencies).get(found.job_id, []),
            limit=CONSUMED_BY),
        log_levels=LOG_FILTER_LEVELS, page_size=LOG_PAGE,
    )


def _retriable(jc: JobControl, found: Build) -> bool:
    """Whether the build page offers Retry: a failed, abandoned or cancelled build that no
    build retries yet."""
    return found.state in RETRIABLE and jc.storage.get_retry(found.id) is None


def _then_job(jc: JobControl) -> str | None:
    """``?then=JOB``: the launch's target, shown once this (dependency) build is done."""
    then = request.args.get("then") or None
    return then if then in jc.config.jobs else None


@bp.get("/builds/<int:build_id>/log.txt")
def build_log_text(build_id: int) -> Any:
    """The whole log as text, to save (``?level=`` filters as on the page)."""
    jc = current_jc()
    jc.get_build(build_id)
    lines = log_text(jc.storage, build_id, min_level=level_arg())
    response = Response(stream_with_context(lines), mimetype="text/plain")
    response.headers["Content-Disposition"] = f'attachment; filename="build-{build_id}.log"'
    return response


@bp.get("/builds/<int:build_id>/live")
def build_live(build_id: int) -> Any:
    """What the build page needs to follow a build: the changed parts, rendered by the same
    templates as the page (so escaped the same way), and for a page showing the log's tail
    (``?tail=1``) the records after ``after``, a page at most (``reset``: the page starts
    over with the log's last page); other pages learn only whether newer records exist."""
    jc = current_jc()
    found = jc.get_build(build_id)  # the state first: the log read next is then complete
    after = int_arg("after", 0, low=0) or 0
    level = level_arg()
    if flag(request.args, "tail"):
        records, reset = new_records(jc.storage, build_id, after=after, min_level=level)
        newer = False
    else:
        records, reset = [], False
        newer = has_newer(jc.storage, build_id, after=after, min_level=level)
    next_url = None
    then = _then_job(jc)
    if then and found.state.finished:
        newest = [b for b in jc.storage.list_builds(then, limit=1) if b.id > build_id]
        if newest:
            next_url = url_for("pages.build", build_id=newest[0].id)
    return jsonify({
        "state": found.state.value,
        "finished": found.state.finished,
        "after": records[-1].seq if records else after,
        "reset": reset,
        "newer": newer,
        "log_html": render_template("_log_rows.html", records=records),
        "summary_html": render_template("_build_summary.html", build=found),
        "actions_html": render_template("_build_actions.html", build=found,
                                        retriable=_retriable(jc, found)),
        "progress_html": render_template("_progress.html",
                                         progress=progress_rows(jc.progress(build_id))),
        "next_url": next_url,
    })


@bp.post("/builds/<int:build_id>/cancel")
def cancel(build_id: int) -> Any:
    # the form's optional reason, recorded with the cancel ("cancelled by web: REASON")
    reason = one_line(request.form.get("reason") or "", 500) or None
    cancelled = current_jc().cancel(build_id, by=who(), reason=reason)
    flash(f"build #{build_id} is {cancelled.state.value}"
          if cancelled.state.finished else f"cancel of build #{build_id} requested")
    return redirect(url_for("pages.build", build_id=build_id), 303)


@bp.post("/builds/<int:build_id>/rerun")
def rerun(build_id: int) -> Any:
    """A new build of this build's job with its parameters, launched as the Run button does
    (the job alone: its dependencies as they are now); then its run's page."""
    started = again(current_jc(), build_id, retry=False, trigger="web", by=who())
    flash(f"rerun of #{build_id}: {started.message}")
    return _to_run(current_jc(), started.build_id, build_id)


@bp.post("/builds/<int:build_id>/retry")
def retry(build_id: int) -> Any:
    """A failed, abandoned or cancelled build retried: a new build of its job that records
    ``retry_of``, in its run, with its parameters; then the run's page."""
    started = again(current_jc(), build_id, retry=True, trigger="web", by=who())
    flash(f"retry of #{build_id}: {started.message}")
    return _to_run(current_jc(), started.build_id, build_id)


def _to_run(jc: JobControl, started: int | None, build_id: int) -> Any:
    """To the run of the build a launch ``started`` (none started: back to ``build_id``)."""
    if started is None:
        return redirect(url_for("pages.build", build_id=build_id), 303)
    run_id = jc.get_build(started).run_id
    return redirect(url_for("pages.run", run_id=run_id) if run_id is not None
                    else url_for("pages.build", build_id=started), 303)


@bp.post("/builds/<int:build_id>/delete")
def delete(build_id: int) -> Any:
    jc = current_jc()
    deleted = jc.delete_build(build_id)
    flash(f"deleted build #{build_id}")
    if deleted.job_id not in jc.config.jobs:  # a job since removed from the config
        return redirect(url_for("pages.jobs"), 303)
    return redirect(url_for("pages.job", job_id=deleted.job_id), 303)


@bp.get("/runs")
def runs() -> Any:
    jc = current_jc()
    limit = int_arg("limit", 50, low=1, high=MAX_LIMIT) or 50
    job_id = request.args.get("job") or None  # ?job=: the runs that built it
    found = jc.runs(job_id=job_id, limit=limit + 1, before_id=int_arg("before", low=1))
    return render_template("runs.html", runs=found[:limit], older=len(found) > limit,
                           limit=limit, jobs=jc.config.jobs, job_id=job_id)


@bp.get("/runs/<int:run_id>")
def run(run_id: int) -> Any:
    jc = current_jc()
    return render_template("run.html", view=jc.get_run(run_id), jobs=jc.config.jobs)


@bp.get("/graph")
def graph() -> Any:
    jc = current_jc()
    statuses = jc.status()
    drawing = layered_layout(jc.config.dependencies, _state_classes(statuses))
    return render_template("graph.html", drawing=drawing, statuses=statuses)
