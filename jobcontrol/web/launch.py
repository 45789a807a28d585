"""Launching builds from the web: a ``jobcontrol build`` process that outlives the request.

The child gets the config path on its command line and the storage URL in its environment
(a PostgreSQL password stays out of ``ps``). It writes each build's id to a pipe as the build
starts (``build --announce-fd``): the request waits for the first id, or for the child to give
up (its one-line error), and returns. The id comes from the child itself, so another build of
the same job started at the same moment can never be mistaken for ours.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from jobcontrol.errors import ExitCode, JobAlreadyRunningError, JobControlError, JobPausedError
from jobcontrol.rules.plan import make_plan

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

#: seconds the request waits for the child's first build to start
START_TIMEOUT = 30.0
#: the build command's refusal when a job runs already (JobAlreadyRunningError's message)
ALREADY_RUNNING = re.compile(r"job '(?P<job>.+)' is already running \(builds? (?P<ids>[0-9, ]+)\)")


class LaunchError(JobControlError):
    """The build process stopped before starting a build; ``exit_code`` is its own."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Launched:
    """What a launch started: the first build's id (None if it was still pending when the
    request stopped waiting, or if there was nothing to build) and the process id."""

    build_id: int | None
    job_id: str | None
    pid: int
    message: str


@dataclass(frozen=True)
class LaunchOptions:
    """The ``build`` command's choices a launch offers."""

    deps: bool = False
    depending: bool = False
    if_outdated: bool = False
    #: ``(name, value)`` of each parameter given (as ``--param name=value``)
    params: tuple[tuple[str, str], ...] = ()
    #: what the run is recorded as started by (``web``: the form; ``api``: the JSON API)
    trigger: str = "web"
    #: who, as the run records it (None: the build process's ``user@host``)
    by: str | None = None
    #: the build this launch retries (``build --retry-of``: in its run, its parameters)
    retry_of: int | None = None

    def flags(self) -> list[str]:
        flags = [flag for flag, on in (("--deps", self.deps), ("--depending", self.depending),
                                       ("--if-outdated", self.if_outdated)) if on]
        for name, value in self.params:
            flags += ["--param", f"{name}={value}"]
        flags += ["--trigger", self.trigger]
        flags += ["--retry-of", str(self.retry_of)] if self.retry_of is not None else []
        return flags + (["--by", self.by] if self.by else [])


def start(jc: JobControl, job_id: str, options: LaunchOptions) -> Launched:
    """Build ``job_id`` as the config says: queued for Celery workers when its executor is
    ``celery`` (as ``build --async``), else in a background ``jobcontrol build`` process.

    A paused job is refused (:class:`JobPausedError`): the web has no ``--force``."""
    jc.param_values([job_id], dict(options.params))  # refused here, in one line
    retry = jc.retry_start(options.retry_of, trigger=options.trigger, by=options.by) \
        if options.retry_of is not None else None  # a retry refused here, in one line
    steps = make_plan(jc.config.dependencies, [job_id], with_deps=options.deps,
                      with_depending=options.depending)
    pauses = jc.pauses(step.job_id for step in steps)
    if job_id in pauses:
        raise JobPausedError(job_id, pauses[job_id].describe())
    if not jc.config.executor.remote:
        launched = launch(str(jc.config.path), jc.storage.url, job_id, options)
        if launched.build_id is None and launched.message.startswith("nothing to build") \
                and pauses:  # the pause may be why: not only "up to date"
            held = ", ".join(sorted(pauses))
            return Launched(None, None, launched.pid,
                            f"nothing built for {job_id}: up to date, or held by paused "
                            f"{held} (see the job's page)")
        return launched
    queued = jc.submit(job_id, deps=options.deps, depending=options.depending,
                       if_outdated=options.if_outdated, params=dict(options.params),
                       trigger=options.trigger, by=options.by, run=retry)
    if not queued:
        return Launched(None, None, os.getpid(), f"{job_id}: nothing to build")
    ids = ", ".join(f"#{build.id}" for build in queued)
    return Launched(queued[0].id, queued[0].job_id, os.getpid(),
                    f"queued for the workers: {ids}")


def param_text(value: str | int | float | bool) -> str:
    """A parameter's value as ``--param`` takes it (the job's declaration types it)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def again(jc: JobControl, build_id: int, *, retry: bool, trigger: str,
          by: str | None) -> Launched:
    """Build the job of build ``build_id`` again with its parameters, as a launch: a rerun
    (a new run), or a retry (``retry_of`` = it, in its run: see ``build --retry-of``)."""
    found = jc.get_build(build_id)
    if retry:
        return start(jc, found.job_id, LaunchOptions(retry_of=build_id, trigger=trigger, by=by))
    params = tuple((name, param_text(value)) for name, value in (found.params or {}).items())
    return start(jc, found.job_id, LaunchOptions(params=params, trigger=trigger, by=by))


def launch(config_path: str, storage_url: str, job_id: str, options: LaunchOptions,
           *, timeout: float = START_TIMEOUT) -> Launched:
    """Start ``jobcontrol build JOB`` in a new session and return its first build."""
    if storage_url.startswith("memory:"):
        raise LaunchError("cannot launch builds on memory:// storage: another process would "
                          "not see them (use SQLite or PostgreSQL)", ExitCode.USAGE)
    read_fd, write_fd = os.pipe()
    # the child's stderr, read only if it fails before starting a build; a file, not a
    # pipe, so a child that writes a lot later never blocks on a reader that is gone
    errors = tempfile.TemporaryFile()
    env = {**os.environ, "JOBCONTROL_STORAGE": storage_url}
    env.pop("JOBCONTROL_CONFIG", None)
    command = [sys.executable, "-m", "jobcontrol", "-c", config_path, "build", job_id,
               *options.flags(), "--announce-fd", str(write_fd)]
    with errors:
        try:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                pass_fds=(write_fd,), start_new_session=True, env=env,
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        # collect its exit status whenever it comes, so no zombie is left behind
        threading.Thread(target=process.wait, name=f"jobcontrol-build-{process.pid}",
                         daemon=True).start()
        try:
            line = _first_line(read_fd, timeout)
        finally:
            os.close(read_fd)
        return _outcome(line, process, errors, job_id, timeout)


def _outcome(line: str | None, process: subprocess.Popen[bytes], errors: IO[bytes],
             job_id: str, timeout: float) -> Launched:
    if line:
        started = json.loads(line)
        return Launched(int(started["id"]), str(started["job"]), process.pid,
                        f"build #{started['id']} of {started['job']} started")
    if line is None:
        return Launched(None, None, process.pid,
                        f"the build process (pid {process.pid}) started no build within "
                        f"{timeout:g}s; its builds will show up on the job's page")
    try:  # the pipe closed without an id: the process is ending
        code = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        code = None
    errors.seek(0)
    text = errors.read().decode("utf-8", "replace").strip()
    if code == 0:
        return Launched(None, None, process.pid, f"nothing to build: {job_id} is up to date")
    message = text.splitlines()[-1] if text else f"the build process exited with {code}"
    message = message.removeprefix("Error: ")
    running = ALREADY_RUNNING.search(message) if code == ExitCode.RUNNING else None
    if running:  # the web links to the running builds: the error carries their ids
        ids = [int(i) for i in running["ids"].split(",")]
        raise JobAlreadyRunningError(running["job"], ids)
    raise LaunchError(message, code if code is not None else 1)


def _first_line(fd: int, timeout: float) -> str | None:
    """The first line written to ``fd``; ``""`` at end of file; None after ``timeout``."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return ""
        data += chunk
    return data.split(b"\n", 1)[0].decode()
