"""``jobcontrol run-due``, ``scheduler`` and ``crontab``: scheduled builds, from cron or a
loop."""

from __future__ import annotations

import shlex
import shutil
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from jobcontrol.cli.build import TextObserver
from jobcontrol.cli.helpers import (
    echo,
    echo_json,
    format_option,
    pass_jc,
    quiet_option,
    quiet_output,
)
from jobcontrol.errors import ExitCode, JobControlError
from jobcontrol.present import report_json
from jobcontrol.scheduler import DEFAULT_MAX_BUILDS
from jobcontrol.timeutil import isoformat

if TYPE_CHECKING:
    from jobcontrol.core import JobControl
    from jobcontrol.scheduler import DueReport


class _When(click.ParamType):
    """An ISO 8601 time; without an offset it is UTC."""

    name = "TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        from datetime import timezone

        from jobcontrol.timeutil import parse_iso

        if isinstance(value, datetime):
            return value
        try:
            when = parse_iso(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time such as 2026-03-01T09:00", param, ctx)
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


class DueObserver(TextObserver):
    """Builds as ``build`` shows them; what was not built is said once, with its instant, by
    :func:`print_report`."""

    def job_not_built(self, job_id: str, reason: str) -> None:
        pass

    def job_refused(self, job_id: str, error: JobControlError) -> None:
        pass


def print_report(report: DueReport, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
    """The lines cron mails: nothing at all when nothing was due. An error that kept an
    instant from being built is said once, with the instant, on stderr."""
    if report.dry_run:
        click.echo("dry run: that time has not come on the storage's clock; nothing claimed "
                   "or built", file=out)
        for job, when in report.due:
            click.echo(f"{job}: run due at {isoformat(when)} would start", file=out)
        for job, when in report.missed:
            click.echo(f"{job}: run due at {isoformat(when)} would be missed (too late for "
                       f"its catchup policy)", file=out)
        return
    errors = {str(error) for error in report.errors}
    for job, when, build in report.overlaps:
        click.echo(f"{job}: run due at {isoformat(when)} skipped, still running "
                   f"(recorded as build #{build.id})", file=out)
    for job, when, reason in report.not_built:
        line = f"{job}: run due at {isoformat(when)} not built ({reason})"
        if reason in errors:
            echo(f"Error: {line}", file=err, err=True)
        else:
            echo(line, file=out)
    for job, when in report.missed:
        click.echo(f"{job}: run due at {isoformat(when)} missed (too late for its catchup "
                   f"policy)", file=out)
    said = {reason for _, _, reason in report.not_built}
    for message in dict.fromkeys(str(error) for error in report.errors):
        if message not in said:
            echo(f"Error: {message}", file=err, err=True)


@click.command("run-due")
@click.option("--at", "now", type=_When(),
              help="Act as if it were this time (ISO 8601, UTC unless it says): to replay "
                   "or test a schedule. A time to come is a dry run: it prints what would be "
                   "due and claims nothing. Default: the storage's clock.")
@quiet_option
@format_option
@pass_jc
def run_due(jc: JobControl, now: datetime | None, quiet: bool, fmt: str) -> None:
    """Start every scheduled build due now, each scheduled instant exactly once however
    many run-due processes race. For a crontab: * * * * * jobcontrol -c FILE run-due

    Exit status: 0 nothing failed, 1 a build it started failed.
    """
    with quiet_output(quiet):
        _run_due(jc, now, fmt)


def _run_due(jc: JobControl, now: datetime | None, fmt: str) -> None:
    observer = DueObserver(live=False) if fmt == "table" else None
    report = jc.run_due(now=now, observer=observer)
    if fmt == "json":
        echo_json(report_json(report))
    else:
        print_report(report)
    if report.failed:
        sys.exit(ExitCode.FAILED)


@click.command()
@click.option("-j", "--jobs", "max_builds", type=click.IntRange(1, 256),
              default=DEFAULT_MAX_BUILDS, show_default=True,
              help="Most builds at once. An instant due when there is no room waits for "
                   "some (see Schedules in the docs).")
@pass_jc
def scheduler(jc: JobControl, max_builds: int) -> None:
    """Run scheduled builds as they come due, in a loop (for systems without cron): each
    due instant is started without waiting for the builds running, or recorded (overlap,
    missed) as run-due records it. Safe to run on several hosts against one PostgreSQL
    storage. SIGTERM or Ctrl-C stops it, cancelling the builds it is running."""
    from jobcontrol.scheduler import Scheduler

    scheduled = [job.id for job in jc.config.jobs.values() if job.schedule]
    if not scheduled:
        raise JobControlError(f"{jc.config.path}: no job has a schedule")
    # the streams as they are now: an inline job's print() is redirected into its log
    out, err = sys.stdout, sys.stderr
    printing = threading.Lock()

    class Loop(Scheduler):
        def report(self, report: DueReport) -> None:
            with printing:
                print_report(report, out, err)

    click.echo(f"scheduler: {len(scheduled)} scheduled job"
               f"{'s' if len(scheduled) != 1 else ''}, at most {max_builds} "
               f"build{'s' if max_builds != 1 else ''} at once; stop with SIGTERM or Ctrl-C")
    Loop(jc, DueObserver(live=False), max_builds=max_builds).serve()
    click.echo("scheduler: stopped")


@click.command()
@click.option("--per-job", is_flag=True,
              help="One line a scheduled job (its own cron expression) instead of one "
                   "run-due line every minute.")
@click.option("--log", "log_file", type=click.Path(dir_okay=False),
              help="Where the entries append their output (default: jobcontrol-cron.log "
                   "beside the config).")
@pass_jc
def crontab(jc: JobControl, per_job: bool, log_file: str | None) -> None:
    """Print crontab entries for the scheduled jobs, with absolute paths, ready to paste
    into `crontab -e`. Exit 2, printing nothing, if no job has a schedule."""
    if not any(job.schedule for job in jc.config.jobs.values()):
        raise JobControlError(f"{jc.config.path}: no job has a schedule, so there is nothing "
                              f"for cron to run")
    config = jc.config.path.resolve()
    log = Path(log_file).resolve() if log_file else config.parent / "jobcontrol-cron.log"
    command = _command_prefix(config)
    redirect = f">> {shlex.quote(str(log))} 2>&1"
    click.echo(f"# jobcontrol: {config}")
    if not per_job:
        click.echo(f"* * * * * {command} run-due {redirect}")
        return
    for job in jc.config.jobs.values():
        schedule = job.schedule
        if schedule is None:
            continue
        if len(schedule.expression.split()) == 6:
            click.echo(f"# {job.id}: {schedule.expression!r} has seconds, which cron has not: "
                       f"use run-due or scheduler")
            continue
        options = schedule.options
        flags = " --deps" * options.deps + " --if-outdated" * options.if_outdated
        if schedule.timezone != "UTC":
            click.echo(f"CRON_TZ={schedule.timezone}")
        click.echo(f"{schedule.expression} {command} build {shlex.quote(job.id)}{flags} "
                   f"{redirect}")
        if schedule.timezone != "UTC":
            click.echo("CRON_TZ=UTC")


def _command_prefix(config: Path) -> str:
    """``/abs/path/jobcontrol -c /abs/jobs.yaml`` (the python running us, if no script)."""
    script = shutil.which("jobcontrol")
    program = (shlex.quote(str(Path(script).resolve())) if script
               else f"{shlex.quote(sys.executable)} -m jobcontrol")
    return f"{program} -c {shlex.quote(str(config))}"


COMMANDS = [run_due, scheduler, crontab]
