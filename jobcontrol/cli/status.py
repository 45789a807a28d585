"""``jobcontrol status``: one row a job."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from jobcontrol.cli.helpers import (
    complete_job_ids,
    echo_json,
    echo_table,
    format_option,
    pass_jc,
    styled,
    styled_state,
)
from jobcontrol.execution.queued import queue_summary
from jobcontrol.models import BuildState
from jobcontrol.present import status_json
from jobcontrol.text import visible

if TYPE_CHECKING:
    from datetime import datetime

    from jobcontrol.core import JobControl


@click.command()
@click.argument("jobs", nargs=-1, shell_complete=complete_job_ids)
@click.option("--tag", help="Only jobs with this tag.")
@click.option("--why", is_flag=True, help="Show every reason a job is outdated.")
@format_option
@pass_jc
def status(jc: JobControl, jobs: tuple[str, ...], tag: str | None, why: bool, fmt: str) -> None:
    """Show each job's last build, last success, and whether it is outdated."""
    statuses = jc.status(list(jobs) or None, tag=tag)
    queued = jc.storage.list_builds(states=[BuildState.QUEUED])
    if fmt == "json":
        echo_json([status_json(s, [b for b in queued if b.job_id == s.job.id])
                   for s in statuses])
        return
    # the schedule and freshness columns, only where a job has them
    scheduled = any(s.job.schedule for s in statuses)
    watched = any(s.job.max_age for s in statuses)
    paused = any(s.paused for s in statuses)
    rows = []
    for s in statuses:
        last_success = s.last_success
        if s.outdated.outdated:
            outdated = "; ".join(s.outdated.reasons) if why else f"yes: {s.outdated.reasons[0]}"
            if not why and len(s.outdated.reasons) > 1:
                outdated += f" (+{len(s.outdated.reasons) - 1}, see --why)"
        else:
            outdated = "no"
        if why and s.outdated.notes:  # what the rules could not compare or passed over
            outdated += "".join(f"; ({note})" for note in s.outdated.notes)
        rows.append([
            s.job.id,
            f"#{s.last_build.id}" if s.last_build else "",
            styled_state(s.last_state),
            _time(last_success.finished) if last_success else "",
            outdated,
            ", ".join(f"#{i}" for i in s.running),
        ])
        if scheduled:
            last = s.last_scheduled
            rows[-1] += [_time(s.next_run),
                         f"{_time(last.scheduled_for)} {last.outcome}" if last else ""]
        if watched:
            rows[-1].append(click.style(f"STALE: {s.stale}", fg="red") if s.stale
                            else "ok" if s.job.max_age else "")
        if paused:
            # the reason is the user's text: shown, never acted on by the terminal
            rows[-1].append(styled(visible(s.paused.describe()), fg="yellow")
                            if s.paused else "")
    headers = ["job", "last build", "state", "last success (UTC)", "outdated", "running"]
    if scheduled:
        headers += ["next run (UTC)", "last scheduled (UTC)"]
    if watched:
        headers.append("freshness")
    if paused:
        headers.append("paused")
    echo_table(rows, headers)
    summary = queue_summary(jc.storage) if queued else None
    if summary:  # messages waiting for a worker (or lost: see executor.queued_timeout)
        click.echo(summary)


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


COMMANDS = [status]
