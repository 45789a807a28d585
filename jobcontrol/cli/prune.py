"""``jobcontrol prune``: delete old builds and log records as each job's ``retention:`` says."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from jobcontrol.cli.helpers import (
    complete_job_ids,
    echo,
    echo_json,
    echo_table,
    format_option,
    pass_jc,
)
from jobcontrol.errors import ExitCode

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

#: ranges of build ids shown in a row; JSON lists every id
MAX_RANGES = 6


def id_ranges(ids: Sequence[int], limit: int = MAX_RANGES) -> str:
    """``#1-#40, #45, #47-#90`` for ascending ``ids``, at most ``limit`` ranges shown."""
    ranges: list[tuple[int, int]] = []
    for build_id in ids:
        if ranges and build_id == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], build_id)
        else:
            ranges.append((build_id, build_id))
    shown = [f"#{a}" if a == b else f"#{a}-#{b}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        shown.append(f"... (+{len(ranges) - limit} more)")
    return ", ".join(shown)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@click.command()
@click.argument("jobs", nargs=-1, shell_complete=complete_job_ids)
@click.option("--dry-run", "-n", is_flag=True,
              help="Show what would be deleted; delete nothing.")
@format_option
@pass_jc
def prune(jc: JobControl, jobs: tuple[str, ...], dry_run: bool, fmt: str) -> None:
    """Delete old builds (after their cleanup_function) and old log records, as each job's
    retention: says; of JOB..., or of every job. Exit 1 if a cleanup failed."""
    report = jc.prune(dry_run=dry_run, job_ids=list(jobs) or None)
    if fmt == "json":
        echo_json(report.as_json())
    else:
        rows = [
            [job.job_id, len(job.deleted), id_ranges(job.deleted), job.deleted_logs,
             job.trimmed_logs, job.kept] if job.has_policy
            else [job.job_id, "", "(no retention policy)", "", "", ""]
            for job in report.jobs
        ]
        verb = "would delete" if dry_run else "deleted"
        echo_table(rows, ["job", verb, "builds", "logs with them", "logs trimmed", "kept"])
        click.echo(f"{verb} {plural(report.deleted_builds, 'build')} and "
                   f"{plural(report.deleted_logs, 'log record')}"
                   + (" (dry run: nothing was deleted)" if dry_run else ""))
    for job in report.jobs:
        for failure in job.failures:
            echo(f"Error: {failure.message}", err=True)
        if job.error:
            echo(f"Error: {job.error}", err=True)
    if not report.ok:
        raise click.exceptions.Exit(ExitCode.FAILED)


COMMANDS = [prune]
