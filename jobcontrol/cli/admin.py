"""``jobcontrol install``, ``check`` and ``delete``: the schema, the config, old builds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from jobcontrol.cli.helpers import echo, pass_jc
from jobcontrol.errors import ExitCode
from jobcontrol.storage import redact_url

if TYPE_CHECKING:
    from jobcontrol.core import JobControl


@click.command()
@pass_jc
def install(jc: JobControl) -> None:
    """Create the storage schema, or migrate it to this version."""
    version = jc.install()
    click.echo(f"storage {redact_url(jc.storage.url)} ready (schema version {version})")


@click.command()
@click.option("--freshness", is_flag=True,
              help="Also check that every job with a max_age succeeded recently enough; "
                   "exit 1 naming the stale ones.")
@click.option("--no-storage", is_flag=True,
              help="Do not open the storage (to check a config away from its database).")
@click.option("--no-import", is_flag=True,
              help="Do not import the jobs' functions: for a machine that only queues "
                   "builds for Celery workers (the job code is not there). The config is "
                   "validated all the same.")
@pass_jc
def check(jc: JobControl, freshness: bool, no_storage: bool, no_import: bool) -> None:
    """Validate the config, import every job's functions and bind their arguments, look
    for the programs of shell jobs' list commands; exit 2 on a problem. Then open the
    storage and make a write (rolled back); exit 6 if it cannot be reached or written.
    With the Celery executor, connect to the broker too; exit 7 if it cannot be reached
    within executor.timeout.

    With --freshness (for monitoring), exit 1 if a job's last success is older than its
    max_age.
    """
    if freshness and no_storage:
        raise click.UsageError("--freshness reads the storage: it cannot go with --no-storage")
    problems = [] if no_import else jc.check_jobs()
    for problem in problems:
        echo(f"Error: {problem}", err=True)
    if problems:
        raise click.exceptions.Exit(ExitCode.USAGE)
    _warn_unmatched_inputs(jc)
    count = len(jc.config.jobs)
    jobs = f"{jc.config.path}: {count} job{'s' if count != 1 else ''}"
    click.echo(f"{jobs}, valid; functions not imported (--no-import)" if no_import else
               f"{jobs}, all functions import and take their arguments")
    if no_storage:
        click.echo("storage not checked (--no-storage)")
    else:
        version = jc.check_storage()
        click.echo(f"storage {redact_url(jc.storage.url)}: writable (schema version {version})")
    if jc.config.executor.remote:
        click.echo(f"broker {jc.check_broker()}: reachable")
    if freshness:
        stale = jc.stale_jobs()
        for job_id, reason in stale.items():
            echo(f"STALE {job_id}: {reason}")
        watched = sum(1 for job in jc.config.jobs.values() if job.max_age)
        if stale:
            raise click.exceptions.Exit(ExitCode.FAILED)
        click.echo(f"fresh: {watched} job{'s' if watched != 1 else ''} with a max_age")


def _warn_unmatched_inputs(jc: JobControl) -> None:
    """A warning (not an error: the files may be made later) for each ``inputs:`` pattern
    that matches no file: a typo there would leave the job never outdated by its inputs."""
    from jobcontrol.fingerprints import input_paths

    for job in jc.config.jobs.values():
        unmatched: list[str] = []
        input_paths(job.inputs, jc.config.directory, unmatched)
        for pattern in unmatched:
            echo(f"Warning: {job.location_of('inputs')}: job {job.id!r}: inputs pattern "
                 f"{pattern!r} matches no file", err=True)


@click.command()
@click.argument("build_ids", metavar="BUILD...", nargs=-1, required=True,
                type=click.IntRange(1))
@pass_jc
def delete(jc: JobControl, build_ids: tuple[int, ...]) -> None:
    """Delete builds with their logs, after running the job's cleanup_function.

    Stops at the first build it cannot delete: exit 1 if its cleanup_function failed (the
    build is kept), 5 if it is running.
    """
    for build_id in build_ids:
        build = jc.delete_build(build_id)
        click.echo(f"deleted build #{build.id} ({build.job_id}, {build.state})")


COMMANDS = [install, check, delete]
