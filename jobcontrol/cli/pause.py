"""``jobcontrol pause`` and ``resume``: keep a job from being started, and let it again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from jobcontrol.cli.helpers import complete_job_ids, echo, echo_json, format_option, pass_jc
from jobcontrol.present import pause_json
from jobcontrol.timeutil import isoformat

if TYPE_CHECKING:
    from jobcontrol.core import JobControl


@click.command()
@click.argument("job", shell_complete=complete_job_ids)
@click.option("--reason", "-m", help="Why (shown wherever the pause is: status, refusals, web).")
@format_option
@pass_jc
def pause(jc: JobControl, job: str, reason: str | None, fmt: str) -> None:
    """Pause JOB: run-due, scheduler, build and the web UI do not start it until `resume`
    (build --force still does). Its scheduled instants meanwhile are recorded `paused`.
    Builds running go on. Pausing a paused job keeps the pause as it was."""
    paused, made = jc.pause(job, reason=reason)
    if fmt == "json":
        echo_json(pause_json(paused))
    elif made:
        echo(f"{job}: {paused.describe()}")
    else:
        echo(f"{job}: already {paused.describe()}")


@click.command()
@click.argument("job", shell_complete=complete_job_ids)
@format_option
@pass_jc
def resume(jc: JobControl, job: str, fmt: str) -> None:
    """Resume JOB after `pause`: its next scheduled instant runs (those that fell while it
    was paused stay recorded `paused`, they are not caught up)."""
    ended = jc.resume(job)
    if fmt == "json":
        echo_json(pause_json(ended))
    elif ended is None:
        echo(f"{job}: not paused")
    else:
        assert ended.resumed is not None  # ended just now
        echo(f"{job}: resumed by {ended.resumed_by} at "
             f"{isoformat(ended.resumed.replace(microsecond=0))} "
             f"({ended.describe()})")


COMMANDS = [pause, resume]
