"""``jobcontrol build``: run builds, showing their logs (and progress on a terminal)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from jobcontrol.cli.helpers import (
    complete_job_ids,
    echo,
    echo_json,
    format_option,
    pass_jc,
    quiet_option,
    quiet_output,
)
from jobcontrol.errors import ExitCode, JobControlError, JobPausedError
from jobcontrol.execution.observer import BuildObserver
from jobcontrol.models import Build, LogRecord, ProgressItem
from jobcontrol.present import build_json, log_line
from jobcontrol.progress_report import progress_tree
from jobcontrol.text import visible
from jobcontrol.timeutil import format_duration

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

_BAR_WIDTH = 24


class TextObserver(BuildObserver):
    """Prints each build's start, log lines and end; on a terminal, also a live progress
    line under the log, redrawn in place. Refusals and warnings go to stderr, once: a
    refusal the run raises at its end is in :attr:`refusals` (not to be printed again)."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self.refusals: list[JobControlError] = []
        # the streams as they are now: an inline job's print() is redirected into its log
        self.out, self.err = sys.stdout, sys.stderr
        #: each running build's latest report of each group, and the latest report of all
        self.progress: dict[int, tuple[Build, dict[tuple[str, ...], ProgressItem],
                                       ProgressItem]] = {}
        self._status_shown = False
        self._last_draw = 0.0

    def _print(self, text: str, err: bool = False, **style: Any) -> None:
        self._clear_status()
        echo(text, file=self.err if err else self.out, **style)
        self._draw_status(force=True)

    def build_started(self, build: Build) -> None:
        self._print(f"build #{build.id} {build.job_id}: started", bold=True)

    def build_log(self, build: Build, record: LogRecord) -> None:
        colour = "red" if record.level >= 40 else "yellow" if record.level >= 30 else None
        style: dict[str, Any] = {"fg": colour} if colour else {}
        self._print(log_line(record, build.id), **style)

    def build_progress(self, build: Build, item: ProgressItem) -> None:
        groups = self.progress[build.id][1] if build.id in self.progress else {}
        groups[item.group] = item
        self.progress[build.id] = (build, groups, item)
        self._draw_status()

    def build_finished(self, build: Build) -> None:
        self.progress.pop(build.id, None)
        colour = "green" if build.state.ok else "red"
        text = f"build #{build.id} {build.job_id}: {build.state}"
        if build.duration is not None:
            text += f" in {format_duration(build.duration)}"
        if build.reason:
            text += f" ({build.reason})"
        self._print(text, fg=colour, bold=True)

    def build_retrying(self, build: Build, delay: float, attempt: int, attempts: int) -> None:
        self._print(f"build #{build.id} {build.job_id}: retry {attempt} of {attempts} "
                    f"in {format_duration(delay)}", fg="yellow")

    def notification_failed(self, build: Build, problem: str) -> None:
        self._print(f"warning: {problem}", err=True, fg="yellow")

    def job_not_built(self, job_id: str, reason: str) -> None:
        self._print(f"{job_id}: not built ({reason})", dim=True)

    def job_refused(self, job_id: str, error: JobControlError) -> None:
        self.refusals.append(error)
        self._print(f"Error: {error}", err=True)

    # -- the live line (terminal only) -----------------------------------------------------

    def _clear_status(self) -> None:
        if self._status_shown:
            self.out.write("\r\x1b[2K")
            self._status_shown = False

    def _draw_status(self, force: bool = False) -> None:
        if not self.live or not self.progress:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        parts = []
        for build, groups, latest in self.progress.values():
            # the whole build: its own report, or the sum of its groups (the tree's root)
            root = progress_tree(groups.values())
            fraction = root.fraction or 0.0
            filled = int(fraction * _BAR_WIDTH)
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            label = f"#{build.id} {build.job_id} [{bar}] {fraction:4.0%}"
            message = root.message if () in groups else latest.message
            if message:
                label += f" {message}"
            parts.append(label)
        self._clear_status()
        width = shutil.get_terminal_size().columns
        self.out.write(visible(" | ".join(parts))[: width - 1])
        self.out.flush()
        self._status_shown = True


class AnnounceObserver(BuildObserver):
    """Writes ``{"id", "job"}`` as a JSON line to a file descriptor when each build starts,
    then passes every event on: how the web UI learns the id of a build it launched."""

    def __init__(self, fd: int, inner: BuildObserver | None) -> None:
        self.fd: int | None = fd
        self.inner = inner or BuildObserver()

    def build_started(self, build: Build) -> None:
        if self.fd is not None:
            line = json.dumps({"id": build.id, "job": build.job_id}) + "\n"
            try:
                os.write(self.fd, line.encode())
            except OSError:  # the reader has gone (it needs only the first id): carry on
                os.close(self.fd)
                self.fd = None
        self.inner.build_started(build)

    def build_log(self, build: Build, record: LogRecord) -> None:
        self.inner.build_log(build, record)

    def build_progress(self, build: Build, item: ProgressItem) -> None:
        self.inner.build_progress(build, item)

    def build_finished(self, build: Build) -> None:
        self.inner.build_finished(build)

    def build_retrying(self, build: Build, delay: float, attempt: int, attempts: int) -> None:
        self.inner.build_retrying(build, delay, attempt, attempts)

    def notification_failed(self, build: Build, problem: str) -> None:
        self.inner.notification_failed(build, problem)

    def job_not_built(self, job_id: str, reason: str) -> None:
        self.inner.job_not_built(job_id, reason)

    def job_refused(self, job_id: str, error: JobControlError) -> None:
        self.inner.job_refused(job_id, error)


@click.command()
@click.argument("jobs", nargs=-1, required=True, shell_complete=complete_job_ids)
@click.option("--deps", is_flag=True, help="First build every outdated upstream job.")
@click.option("--depending", is_flag=True,
              help="After a job succeeds, rebuild every job downstream of it.")
@click.option("--if-outdated", is_flag=True,
              help="Build only jobs that are outdated (make-like; for cron).")
@click.option("--dry-run", "-n", is_flag=True, help="Print the plan and why; build nothing.")
@click.option("--keep-going", "-k", is_flag=True,
              help="After a failure, let independent builds go on.")
@click.option("-j", "--jobs", "parallel", type=click.IntRange(1, 256), default=1,
              show_default=True, help="Builds to run at once, where independent.")
@click.option("--async", "remote", is_flag=True,
              help="Queue the builds for Celery workers (`jobcontrol worker`), print their "
                   "ids and return.")
@click.option("--wait", is_flag=True,
              help="With --async: follow the queued builds until they end, as a local build.")
@click.option("--force", is_flag=True,
              help="Build paused jobs too (see `pause`); without it a paused job is not "
                   "built, nor, with --deps or --depending, the jobs after it.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A parameter of the target jobs (declared in their params:), repeatable; "
                   "a build given values other than the defaults never becomes the job's "
                   "last success.")
@click.option("--retry-of", type=click.IntRange(1), metavar="BUILD",
              help="Retry BUILD (failed, abandoned or cancelled; JOBS is its job): the new "
                   "build records it retries BUILD, with its parameters, in its run.")
@click.option("--trigger", type=click.Choice(["cli", "web", "api"]), default="cli",
              hidden=True, help="What the run is recorded as started by.")
@click.option("--by", hidden=True, help="Who the run is recorded as started by.")
@click.option("--announce-fd", type=click.IntRange(0), hidden=True,
              help="Write each started build's id as a JSON line to this descriptor.")
@quiet_option
@format_option
@pass_jc
def build(jc: JobControl, jobs: tuple[str, ...], quiet: bool, **options: Any) -> None:
    """Build JOBS (and, with --deps / --depending, the jobs around them).

    Exit status: 0 all built (or skipped, or a job paused: said in one line), 1 a build
    failed or was cancelled, 3 dependencies not met, 4 a job was already running, 7 a
    parameter refused.
    """
    given = parse_params(options.pop("params"))
    jc.param_values(list(jobs), given)  # refused before anything, --dry-run too
    run: dict[str, Any] = {"params": given, "trigger": options.pop("trigger"),
                           "by": options.pop("by")}
    retry_of = options.pop("retry_of")
    if retry_of is not None:
        run = {"run": _retry_start(jc, jobs, retry_of, run)}
    with quiet_output(quiet):
        _build(jc, jobs, run=run, **options)


def _retry_start(jc: JobControl, jobs: tuple[str, ...], build_id: int,
                 run: dict[str, Any]) -> Any:
    """``--retry-of``: the retried build's run, its parameters; JOBS must be its job."""
    if run["params"]:
        raise click.UsageError("--retry-of takes the retried build's parameters: no --param")
    retried = jc.get_build(build_id)
    if list(jobs) != [retried.job_id]:
        raise click.UsageError(f"--retry-of {build_id}: give its job, {retried.job_id}, "
                               f"as the only JOBS")
    return jc.retry_start(build_id, trigger=run["trigger"], by=run["by"])


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    """``--param NAME=VALUE`` options as ``{NAME: VALUE}`` (the value's type is checked by
    the job's declaration)."""
    given: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise click.BadParameter(f"{pair!r}: give NAME=VALUE", param_hint="--param")
        given[name.strip()] = value
    return given


def _build(jc: JobControl, jobs: tuple[str, ...], deps: bool, depending: bool,
           if_outdated: bool, dry_run: bool, keep_going: bool, parallel: int, remote: bool,
           wait: bool, force: bool, announce_fd: int | None, fmt: str,
           run: dict[str, Any]) -> None:
    if wait and not remote:
        raise click.UsageError("--wait follows builds queued with --async: give both")
    if dry_run:
        steps = jc.plan(list(jobs), deps=deps, depending=depending, if_outdated=if_outdated,
                        force=force)
        if fmt == "json":
            echo_json([{"job": s.job_id, "role": s.role.value, "build": s.build,
                        "reason": s.reason} for s in steps])
        else:
            for step in steps:
                verb = "build" if step.build else "skip "
                echo(f"{verb} {step.job_id} ({step.role}): {step.reason}")
        return
    text = TextObserver(live=sys.stdout.isatty()) if fmt == "table" else None
    if remote:
        try:
            _build_remote(jc, list(jobs), deps, depending, if_outdated, wait, text, fmt, force,
                          run)
        except JobPausedError as paused:  # not a failure: one line, exit 0
            if fmt == "json":
                echo_json([])
            else:
                echo(str(paused))
        return
    observer = AnnounceObserver(announce_fd, text) if announce_fd is not None else text
    try:
        builds = jc.build(list(jobs), deps=deps, depending=depending, if_outdated=if_outdated,
                          keep_going=keep_going, parallel=parallel, observer=observer,
                          force=force, **run)
    except JobControlError as error:
        if fmt == "json":
            echo_json([build_json(b) for b in getattr(error, "builds", [])])
        if text is not None and error in text.refusals:  # said on stderr as it happened
            sys.exit(error.exit_code)
        raise
    if fmt == "json":
        echo_json([build_json(b) for b in builds])
    _exit_for(builds)


def _build_remote(jc: JobControl, jobs: list[str], deps: bool, depending: bool, if_outdated: bool,
                  wait: bool, observer: TextObserver | None, fmt: str, force: bool,
                  run: dict[str, Any]) -> None:
    """``--async``: queue the builds; with ``--wait``, follow them to their end."""
    builds = jc.submit(jobs, deps=deps, depending=depending, if_outdated=if_outdated,
                       force=force, **run)
    if fmt == "table":
        for queued in builds:
            echo(f"build #{queued.id} {queued.job_id}: queued on {queued.queue}")
        if not builds:
            echo("nothing to build")
    if not wait:
        if fmt == "json":
            echo_json([build_json(b) for b in builds])
        return
    builds = jc.follow(builds, observer or BuildObserver())
    if fmt == "json":
        echo_json([build_json(b) for b in builds])
    _exit_for(builds)


def _exit_for(builds: list[Build]) -> None:
    """Exit 1 when a build failed or was cancelled (a failure retried successfully is not)."""
    retried = {b.retry_of for b in builds}
    if any(not b.state.ok for b in builds if b.id not in retried):
        sys.exit(ExitCode.FAILED)


COMMANDS = [build]
