"""``jobcontrol cancel`` and ``reap``: stopping builds, and recording the ones whose runner
is gone."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from jobcontrol.cli.helpers import echo, echo_json, echo_table, format_option, pass_jc
from jobcontrol.errors import JobControlError
from jobcontrol.present import BUILD_HEADERS, build_json, build_row

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

#: how often ``cancel --wait`` looks at the build again, in seconds
_WAIT_POLL = 0.2


@click.command()
@click.argument("build_ids", metavar="BUILD...", nargs=-1, required=True,
                type=click.IntRange(1))
@click.option("--reason", "-m", help="Why: recorded with the build's state.")
@click.option("--wait", is_flag=True,
              help="Wait until each build has stopped, and show how it ended.")
@format_option
@pass_jc
def cancel(jc: JobControl, build_ids: tuple[int, ...], reason: str | None, wait: bool,
           fmt: str) -> None:
    """Cancel builds: a queued one never starts, a running one is stopped by its runner
    (SIGTERM, then SIGKILL after runner.kill_grace), from any shell or host.

    Exit 5 if a build had already finished (it is left as it was).
    """
    builds, errors = [], []
    for build_id in build_ids:
        try:
            build = jc.cancel(build_id, reason=reason)
        except JobControlError as error:
            errors.append(error)
            echo(f"Error: {error}", err=True)
            continue
        if wait and not build.state.finished:
            build = _wait_until_finished(jc, build.id)
        builds.append(build)
        if fmt == "table":
            if build.state.finished:
                echo(f"build #{build.id} {build.job_id}: {build.state} ({build.reason})")
            else:
                click.echo(f"build #{build.id} {build.job_id}: cancel requested; its runner "
                           f"stops it within seconds")
    if fmt == "json":
        echo_json([build_json(build) for build in builds])
    if errors:
        sys.exit(max(error.exit_code for error in errors))


def _wait_until_finished(jc: JobControl, build_id: int) -> Any:
    while True:
        build = jc.get_build(build_id)  # reaps it too, if its runner died meanwhile
        if build.state.finished:
            return build
        time.sleep(_WAIT_POLL)


@click.command()
@format_option
@pass_jc
def reap(jc: JobControl, fmt: str) -> None:
    """Mark running builds whose runner is gone as abandoned: on this host, a runner
    process that died; from any host, no heartbeat for runner.heartbeat_timeout (on this
    host, a hung runner and its job's processes are then killed).

    Every command that reads builds does this too; this one is for cron or monitoring.
    """
    reaped = jc.reap()
    if fmt == "json":
        echo_json([build_json(build) for build in reaped])
    elif reaped:
        echo_table([build_row(build) for build in reaped], BUILD_HEADERS)
    else:
        click.echo("no abandoned builds")


@click.command()
@click.argument("build_ids", metavar="BUILD...", nargs=-1, required=True,
                type=click.IntRange(1))
@format_option
@pass_jc
def requeue(jc: JobControl, build_ids: tuple[int, ...], fmt: str) -> None:
    """Send queued builds to the workers again (their message lost: a purged queue, a
    queue no worker reads). executor.queued_timeout then counts from now.

    Exit 5, nothing sent, if a build is not queued.
    """
    builds = jc.requeue(list(build_ids))
    if fmt == "json":
        echo_json([build_json(build) for build in builds])
        return
    for build in builds:
        click.echo(f"build #{build.id} {build.job_id}: sent again to queue {build.queue}")


COMMANDS = [cancel, reap, requeue]
