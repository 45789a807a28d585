"""Finding builds whose runner vanished, and marking them ``abandoned`` with a reason.

A ``running`` build is abandoned when, on this host, its runner's process is gone (or its
pid now belongs to a process started after the build: pids are reused), or, from any host,
its heartbeat is older than the limit. Any command that reads or claims builds calls
:func:`reap` first, so a crashed runner never holds its job forever.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cache

from jobcontrol.models import Build, BuildState
from jobcontrol.storage.base import Storage
from jobcontrol.timeutil import format_duration

#: slack when comparing a process's start with its build's start (clock ticks, rounding)
_START_SLACK = timedelta(seconds=1)


@cache
def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as handle:
            for line in handle:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def process_start_time(pid: int) -> datetime | None:
    """When process ``pid`` started (Linux ``/proc``), or None where that is unknown."""
    boot = _boot_time()
    if boot is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[19])  # field 22 of the whole line: starttime, in clock ticks
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), timezone.utc)


def process_alive(pid: int) -> bool:
    """True if a process with this pid exists (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def abandon_reason(build: Build, *, host: str, now: datetime,
                   heartbeat_timeout: float) -> str | None:
    """Why this running build is abandoned, or None if its runner may still be alive."""
    if build.host == host and build.pid:
        # killed, or it gave up on a storage that refused the outcome: its output says which
        gone = f"process {build.pid}@{host} ended without recording an outcome"
        if not process_alive(build.pid):
            return gone
        started = process_start_time(build.pid)
        if started is not None and build.started is not None \
                and started > build.started + _START_SLACK:
            return f"{gone} (its pid was reused)"
        return None  # alive here: a slow heartbeat is not a death
    beat = build.heartbeat or build.started
    if beat is None:
        return None
    age = (now - beat).total_seconds()
    if age > heartbeat_timeout:
        return f"no heartbeat for {format_duration(age)} (runner {build.pid}@{build.host})"
    return None


def reap(storage: Storage, *, host: str, heartbeat_timeout: float,
         now: datetime | None = None) -> list[Build]:
    """Mark every abandoned running build; returns them as recorded."""
    running: Sequence[Build] = storage.list_builds(states=[BuildState.RUNNING])
    if not running:
        return []
    now = now or storage.now()
    reaped = []
    for build in running:
        reason = abandon_reason(build, host=host, now=now, heartbeat_timeout=heartbeat_timeout)
        if reason is not None:
            # conditional: if the runner finished meanwhile, its outcome stands
            reaped.append(storage.finish_build(build.id, BuildState.ABANDONED, reason=reason))
    return [build for build in reaped if build.state is BuildState.ABANDONED]
