"""``jobcontrol install``, ``check`` and ``delete``: the schema, the config, old builds."""

from __future__ import annotations

from typing import Any

import click

from jobcontrol.cli.helpers import pass_jc
from jobcontrol.errors import JobControlError
from jobcontrol.storage import redact_url


@click.command()
@pass_jc
def install(jc: Any) -> None:
    """Create the storage schema, or migrate it to this version."""
    version = jc.install()
    click.echo(f"storage {redact_url(jc.storage.url)} ready (schema version {version})")


@click.command()
@pass_jc
def check(jc: Any) -> None:
    """Validate the config and import every job's functions; exit 2 on a problem."""
    problems = []
    for job in jc.config.jobs.values():
        keys = ["function"] + (["cleanup_function"] if job.cleanup_function else [])
        for key in keys:
            try:
                jc.import_function(job.id, key)
            except JobControlError as error:
                problems.append(str(error))
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        raise click.exceptions.Exit(2)
    count = len(jc.config.jobs)
    click.echo(f"{jc.config.path}: {count} job{'s' if count != 1 else ''}, all functions import")


@click.command()
@click.argument("build_ids", metavar="BUILD...", nargs=-1, required=True,
                type=click.IntRange(1))
@pass_jc
def delete(jc: Any, build_ids: tuple[int, ...]) -> None:
    """Delete builds with their logs, after running the job's cleanup_function."""
    for build_id in build_ids:
        build = jc.delete_build(build_id)
        click.echo(f"deleted build #{build.id} ({build.job_id}, {build.state})")


COMMANDS = [install, check, delete]
