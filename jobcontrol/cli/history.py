"""``jobcontrol builds`` and ``jobcontrol show``: build history and one build in full."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from jobcontrol.cli.helpers import (
    Styled,
    complete_job_ids,
    echo,
    echo_json,
    echo_table,
    format_option,
    pass_jc,
    styled_state,
)
from jobcontrol.models import BuildQuery, BuildState
from jobcontrol.present import BUILD_HEADERS, build_detail_json, build_json, build_row
from jobcontrol.progress_report import progress_tree
from jobcontrol.serialize import Opaque, to_jsonable
from jobcontrol.text import json_text, visible
from jobcontrol.timeutil import format_duration, isoformat, parse_time_or_age, utcnow

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

STATE_CHOICE = click.Choice([s.value for s in BuildState])


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--since``/``--until``: checked here (a usage error), read against the storage's
    clock when the command runs."""
    if value:
        try:
            parse_time_or_age(value, utcnow())
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
    return value


@click.command()
@click.argument("job", required=False, shell_complete=complete_job_ids)
@click.option("--state", "states", multiple=True, type=STATE_CHOICE,
              help="Only builds in this state (repeatable).")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True,
              help="How many builds, newest first.")
@click.option("--before", type=click.IntRange(1), help="Only builds older than this id.")
@click.option("--tag", help="Only builds of the jobs with this tag.")
@click.option("--since", callback=_when, metavar="WHEN",
              help="Only builds created since WHEN: 24h, 7d or an ISO 8601 time (UTC).")
@click.option("--until", callback=_when, metavar="WHEN",
              help="Only builds created before WHEN.")
@click.option("--search", metavar="TEXT",
              help="Only builds whose job id, or reason (the newest 20,000), holds TEXT.")
@format_option
@pass_jc
def builds(jc: JobControl, job: str | None, states: tuple[str, ...], limit: int,
           before: int | None, tag: str | None, since: str | None, until: str | None,
           search: str | None, fmt: str) -> None:
    """List builds, newest first (of JOB, or of every job)."""
    if job is not None:
        jc.job(job)
    wanted = [BuildState(s) for s in states] or None
    if tag or since or until or search:  # the Builds page's filters
        now = jc.storage.now()
        job_ids: tuple[str, ...] | None = None if job is None else (job,)
        if tag:
            tagged = tuple(j.id for j in jc.config.jobs.values() if tag in j.tags)
            job_ids = tagged if job_ids is None else tuple(j for j in job_ids if j in tagged)
        query = BuildQuery(job_ids=job_ids, states=tuple(wanted) if wanted else None,
                           since=parse_time_or_age(since, now) if since else None,
                           until=parse_time_or_age(until, now) if until else None,
                           text=search or None, before_id=before)
        found, _ = jc.search_builds(query, limit=limit)
    else:
        found = jc.builds(job, states=wanted, limit=limit, before_id=before)
    if fmt == "json":
        echo_json([build_json(b) for b in found])
    else:
        echo_table([build_row(b) for b in found], BUILD_HEADERS)


@click.command()
@click.argument("build_id", metavar="BUILD", type=click.IntRange(1), required=False)
@click.option("--run", "run_id", type=click.IntRange(1), metavar="ID",
              help="Show this run (see `runs`) and its builds instead of a build.")
@format_option
@pass_jc
def show(jc: JobControl, build_id: int | None, run_id: int | None, fmt: str) -> None:
    """Show one build: times, state, reason, return value, exception, progress (or, with
    --run, one run and its builds)."""
    if (build_id is None) == (run_id is None):
        raise click.UsageError("give a BUILD id or --run ID (one of them)")
    if run_id is not None:
        from jobcontrol.cli.runs import show_run

        show_run(jc, run_id, fmt)
        return
    assert build_id is not None
    build = jc.get_build(build_id)
    progress = jc.progress(build_id)
    if fmt == "json":
        echo_json(build_detail_json(build, progress))
        return
    lines = [
        ("build", f"#{build.id}"),
        ("job", build.job_id),
        ("state", styled_state(build.state.value)),
        ("reason", build.reason or ""),
        ("created", isoformat(build.created) or ""),
        ("started", isoformat(build.started) or ""),
        ("finished", isoformat(build.finished) or ""),
        ("duration", format_duration(build.duration)),
        ("host / pid", f"{build.host or ''} / {build.pid or ''}"),
    ]
    if build.run_id is not None:
        lines.append(("run", f"#{build.run_id}"))
    if build.params:
        lines.append(("params", ", ".join(f"{k}={v}" for k, v in build.params.items())))
    scheduled = build.definition.get("scheduled_for")
    if isinstance(scheduled, str):  # as the web's build page shows it
        lines.append(("scheduled for", scheduled))
    if build.retry_of:
        lines.append(("retry of", f"#{build.retry_of}"))
    if build.cancel_requested and not build.state.finished:
        lines.append(("cancel requested", f"{isoformat(build.cancel_requested)} "
                                          f"({build.cancel_reason})"))
    if build.dependency_builds:
        lines.append(("consumed", ", ".join(f"{job} #{bid}"
                                            for job, bid in build.dependency_builds.items())))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:  # one line each: a newline in a reason shows as \n
        click.echo(f"{label:<{width}}  {value if isinstance(value, Styled) else visible(value)}")
    if build.result is not None:
        value = build.retval
        text = value.text if isinstance(value, Opaque) else json_text(to_jsonable(value), 2)
        note = {"repr": " (not JSON: kept as its repr)", "pickle": " (pickled)"}.get(
            build.result.kind, "")
        echo(f"\nreturn value{note}:\n{text}")
    if progress:
        echo("\nprogress:")
        for depth, node in progress_tree(progress).walk():
            if not node.group and not node.children and node.total is None:
                continue
            total = f"/{node.total:g}" if node.total is not None else ""
            percent = f" {node.fraction:.0%}" if node.fraction is not None else ""
            name = visible(node.name) or "(build)"
            message = f"  {visible(node.message)}" if node.message else ""
            echo(f"  {'  ' * depth}{name}: {node.current:g}{total}{percent}{message}")
    if build.exception is not None:
        echo(f"\nexception: {build.exception.type}: {build.exception.message}")
        echo(build.exception.traceback.rstrip())


COMMANDS = [builds, show]
