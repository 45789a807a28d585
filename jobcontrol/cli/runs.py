"""``jobcontrol runs`` and ``show --run``: the runs (each invocation that started builds)
and one run with its builds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from jobcontrol.cli.helpers import (
    complete_job_ids,
    echo,
    echo_json,
    echo_table,
    format_option,
    pass_jc,
    styled_state,
)
from jobcontrol.present import BUILD_HEADERS, build_row, run_json, run_line
from jobcontrol.text import visible
from jobcontrol.timeutil import isoformat

if TYPE_CHECKING:
    from jobcontrol.core import JobControl


@click.command()
@click.option("--job", "job_id", shell_complete=complete_job_ids,
              help="Only runs that made a build of this job.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True,
              help="How many runs, newest first.")
@click.option("--before", type=click.IntRange(1), help="Only runs older than this id.")
@format_option
@pass_jc
def runs(jc: JobControl, job_id: str | None, limit: int, before: int | None,
         fmt: str) -> None:
    """List runs, newest first: each invocation that started builds (build, a scheduled
    instant, a web launch, build --async, a backfill), its state and its builds."""
    found = jc.runs(job_id=job_id, limit=limit, before_id=before)
    if fmt == "json":
        echo_json([run_json(view, builds=False) for view in found])
        return
    for view in found:
        echo(visible(run_line(view)))
    if not found:
        echo("no runs")


def show_run(jc: JobControl, run_id: int, fmt: str) -> None:
    """``show --run ID``: the run, then its builds as ``builds`` lists them."""
    view = jc.get_run(run_id)
    if fmt == "json":
        echo_json(run_json(view))
        return
    run = view.run
    lines = [
        ("run", f"#{run.id}"),
        ("state", str(styled_state(view.state.value))),
        ("trigger", run.trigger.value),
        ("by", run.by),
        ("created", isoformat(run.created) or ""),
        ("targets", " ".join(run.targets)),
    ]
    for job, values in run.params.items():
        lines.append((f"params {job}", ", ".join(f"{k}={v}" for k, v in values.items())))
    if run.note:
        lines.append(("note", run.note))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label:<{width}}  {visible(value) if label != 'state' else value}")
    echo("")
    if view.builds:
        echo_table([build_row(b) for b in view.builds], BUILD_HEADERS)
    else:
        echo("no builds on record (none was made, or they were deleted or pruned since)")


COMMANDS = [runs]
