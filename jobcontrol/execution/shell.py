"""Shell jobs: :func:`run`, the callable a job with ``command:`` runs (the config names it as
the job's function, so every executor, isolation and record treats a shell job as any job).

The command's stdout and stderr are read line by line as they come and logged (logger
``command``: stdout INFO, stderr WARNING), so they are stored, masked and followed as any
job's log. Its exit status is the build's outcome: 0 a success whose return value is 0,
anything else a failure whose reason names the status or the signal.

Where it runs decides its process group. In a process-isolated build it stays in the
build's own process group, which the runner signals on a timeout or cancel and kills
when the build ends, and which the reaper kills should the runner die. Inline (in the
runner's process) it gets a session and process group of its own, killed here when the
build is interrupted or ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from jobcontrol.context import current_build
from jobcontrol.execution.runner import JobFailed, in_build_process

__all__ = ["LOGGER", "run", "start_problem"]

#: the logger the command's lines are logged by
LOGGER = "command"
#: an inline command told to stop gets SIGTERM, then SIGKILL this many seconds later
KILL_GRACE = 5.0
#: a line longer than this (bytes) is logged in pieces: output without newlines must not
#: grow without bound in memory
MAX_LINE = 64 * 1024
#: once the command has exited, how long what it left in the pipes is read for, at most
#: (a process it left behind may hold them open and go on writing)
DRAIN_TIME = 1.0
_READ_SIZE = 1 << 16
#: exit statuses the shell gives for a command it could not run
_SHELL_STATUSES = {126: "not executable", 127: "command not found"}

_log = logging.getLogger(LOGGER)


def run(command: str | Sequence[str], env: Mapping[str, str] | None = None,
        cwd: str | None = None) -> int:
    """Run ``command`` (a string: by ``/bin/sh -c``; a list: as it is) with ``env`` over
    this process's environment, in ``cwd``; log its output line by line. Returns 0 on
    success; a failed command raises :class:`JobFailed` with its exit status."""
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
    if cwd is not None and not os.path.isdir(cwd):
        raise JobFailed(f"working directory {cwd} does not exist")
    own_group = not in_build_process()
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=cwd, env=_environment(env), start_new_session=own_group,
        )
    except OSError as exc:
        raise JobFailed(_start_failure(exc, argv[0], cwd)) from None
    status = _Command(process, own_group).wait()
    if status == 0:
        return 0
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        raise JobFailed(f"killed by signal {name} ({-status})", status)
    meaning = _SHELL_STATUSES.get(status) if isinstance(command, str) else None
    raise JobFailed(f"exit status {status}" + (f" ({meaning})" if meaning else ""), status)


def start_problem(command: str | Sequence[str], env: Mapping[str, str] | None = None,
                  cwd: str | None = None) -> str | None:
    """Why a list command's program would not start on this machine (for ``jobcontrol
    check``): not on ``PATH`` (the job's ``env`` may set it), or not executable; None when
    it would, or for a string command (the shell finds its programs when it runs)."""
    if isinstance(command, str):
        return None
    program = str(command[0])
    if os.sep in program:  # a path, relative to the working directory
        target = os.path.join(cwd or "", program)
        if cwd is not None and not os.path.isdir(cwd):
            return None  # made by the time it runs, perhaps (a build says so if not)
        if not os.path.isfile(target):
            return f"command {program!r} not found"
    else:
        path = (env or {}).get("PATH", os.environ.get("PATH", os.defpath))
        # a relative folder on PATH is relative to where the command runs
        path = os.pathsep.join(os.path.join(cwd or "", folder)
                               for folder in path.split(os.pathsep))
        found = shutil.which(program, mode=os.F_OK, path=path)
        if found is None:
            return f"command {program!r} not found on PATH"
        target = found
    if not os.access(target, os.X_OK):
        return f"command {program!r} is not executable"
    return None


def _start_failure(exc: OSError, program: str, cwd: str | None) -> str:
    """Why the command did not start, in the build's reason."""
    if cwd is not None and exc.filename == cwd:
        return f"working directory {cwd}: {exc.strerror or exc}"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"command not executable: {program}"
    return f"command could not start: {program}: {exc.strerror or exc}"


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """This process's environment, the build's ids and scheduled instant, then the job's
    ``env``."""
    environ = dict(os.environ)
    build = current_build()
    if build is not None:
        environ["JOBCONTROL_BUILD_ID"] = str(build.id)
        environ["JOBCONTROL_JOB_ID"] = build.job_id
        # a command's context.scheduled_for() and interval(): what a backfill is for
        when, span = build.definition.get("scheduled_for"), build.definition.get("interval")
        for name in ("JOBCONTROL_SCHEDULED_FOR", "JOBCONTROL_INTERVAL_START"):
            environ.pop(name, None)  # never a runner's own (a build started by a build)
        if isinstance(when, str):
            environ["JOBCONTROL_SCHEDULED_FOR"] = when
            if isinstance(span, list) and span and isinstance(span[0], str):
                environ["JOBCONTROL_INTERVAL_START"] = span[0]
    environ.update(env or {})
    return environ


class _Command:
    """A started command: its pipes read into log records until it ends."""

    def __init__(self, process: subprocess.Popen[bytes], own_group: bool) -> None:
        assert process.stdout is not None and process.stderr is not None
        self.process = process
        self.own_group = own_group
        #: open pipe → (its level, the part of a line read so far)
        self.pipes: dict[int, tuple[int, bytearray]] = {
            process.stdout.fileno(): (logging.INFO, bytearray()),
            process.stderr.fileno(): (logging.WARNING, bytearray()),
        }
        for fd in self.pipes:
            os.set_blocking(fd, False)
        self.pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # older kernels: polled
            self.pidfd = os.pidfd_open(process.pid)

    def wait(self) -> int:
        """Log the output until the command exits; its status (``-N``: killed by signal N).
        Interrupted (a timeout, a cancel, Ctrl-C), it stops the command first."""
        finished = False
        try:
            self._pump()
            finished = True
        finally:
            self._end(finished)
        return self.process.returncode

    def _pump(self, until: float | None = None) -> None:
        """Read the pipes as lines come, until the command has exited (or ``until``, a
        ``time.monotonic()``); then what it left in them. The end of its output is not its
        exit (coreutils close stdout just before exiting): its group is killed after."""
        while not self._exited():
            wait = 1.0 if self.pidfd is not None else 0.05
            if until is not None:
                wait = min(wait, until - time.monotonic())
                if wait <= 0:
                    return
            watched = list(self.pipes) + ([self.pidfd] if self.pidfd is not None else [])
            ready, _, _ = select.select(watched, [], [], wait)
            for fd in ready:
                if fd in self.pipes:
                    self._read(fd)
        deadline = time.monotonic() + DRAIN_TIME
        while self.pipes and time.monotonic() < deadline:
            ready, _, _ = select.select(list(self.pipes), [], [], 0)
            if not ready:
                break  # all it wrote is read: what is left behind ends with the build
            for fd in ready:
                self._read(fd)

    def _exited(self) -> bool:
        """True once the command's process has exited; not collected yet, so its process
        group id stays its own while the group is signalled."""
        try:
            info = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _read(self, fd: int) -> None:
        level, partial = self.pipes[fd]
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        if not data:  # end of the pipe
            del self.pipes[fd]
            if partial:
                self._log(level, bytes(partial))
            return
        partial += data
        *lines, rest = partial.split(b"\n")
        for line in lines:
            self._log(level, line)
        while len(rest) > MAX_LINE:
            self._log(level, rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        partial[:] = rest

    @staticmethod
    def _log(level: int, line: bytes | bytearray) -> None:
        _log.log(level, "%s", line.decode("utf-8", "replace").rstrip("\r"))

    def _end(self, finished: bool) -> None:
        """Stop what is left of the command, collect it, close the pipes. Interrupted, the
        command gets SIGTERM, then SIGKILL :data:`KILL_GRACE` later (its lines meanwhile
        logged). Its own group is killed here; the build's, by the runner."""
        try:
            if not finished:
                self._signal(signal.SIGTERM)
                self._pump(until=time.monotonic() + KILL_GRACE)
                self._signal(signal.SIGKILL)
            elif self.own_group:
                self._signal(signal.SIGKILL)  # what it left behind
            self.process.wait()
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def _signal(self, signum: int) -> None:
        """Signal its process group if it has its own, else the command alone (not the
        build's group: that holds this process too)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.own_group:
                os.killpg(self.process.pid, signum)
            elif self.process.returncode is None and not self._exited():
                os.kill(self.process.pid, signum)
