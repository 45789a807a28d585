"""Builds stuck in ``queued``: their message lost (a purged queue, a queue no worker reads).

A build is *ready* once nothing it waits for is under way: its dependencies have ended,
its job has a free slot (``concurrency``), and a retry's delay has passed. A ready build
still queued ``executor.queued_timeout`` after it was last sent (created, or re-sent: a
queued build's ``heartbeat`` is when it was last sent) has lost its message. The workers'
sweep (:meth:`~jobcontrol.execution.remote.RemoteWorker.sweep`) sends it again once, and
fails it with the reason if it is still queued one more timeout later. The sweep is the
one place: it runs all the time wherever builds can run at all, and a command that only
reads (``status``) writes nothing. A lost build never holds its job for a schedule's
overlap (:func:`holds_job`), even where no worker sweeps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from jobcontrol.errors import BuildNotFoundError, BuildStateError
from jobcontrol.models import Build, BuildState
from jobcontrol.rules import plan
from jobcontrol.storage.base import Storage
from jobcontrol.timeutil import format_duration

if TYPE_CHECKING:
    from jobcontrol.config import JobDefinition

#: sends a queued build's id to the workers of its queue (the remote module makes one)
SendBuild = Callable[[Build], None]
#: how the note of a worker that gave a build back begins (see :func:`given_back`)
GIVEN_BACK = "given back by worker "

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueDepth:
    """The builds waiting in one queue: how many, and since when the oldest."""

    queue: str
    queued: int
    oldest: datetime

    def as_json(self, now: datetime) -> dict[str, object]:
        return {"queue": self.queue, "queued": self.queued,
                "oldest": self.oldest.isoformat(),
                "oldest_age": round((now - self.oldest).total_seconds(), 3)}


def queue_depths(storage: Storage) -> list[QueueDepth]:
    """Queued builds per queue, with the creation time of the oldest, by queue name."""
    found: dict[str, tuple[int, datetime]] = {}
    for build in storage.list_builds(states=[BuildState.QUEUED]):
        queue, created = build.queue or "?", _created(build)
        count, oldest = found.get(queue, (0, created))
        found[queue] = (count + 1, min(oldest, created))
    return [QueueDepth(queue, count, oldest)
            for queue, (count, oldest) in sorted(found.items())]


def queue_summary(storage: Storage) -> str | None:
    """One line of queue depths for people (``status``, the web jobs page), None with
    nothing queued: ``queued: jobcontrol 3 (oldest 2m 5s ago), gpu 1 (...)``."""
    depths = queue_depths(storage)
    if not depths:
        return None
    now = storage.now()
    return "queued: " + ", ".join(
        f"{d.queue} {d.queued} (oldest {format_duration((now - d.oldest).total_seconds())}"
        f" ago)" for d in depths)


def _created(build: Build) -> datetime:
    assert build.created is not None  # every stored build has one
    return build.created


def _get(storage: Storage, build_id: int) -> Build | None:
    try:
        return storage.get_build(build_id)
    except BuildNotFoundError:
        return None


def ready_since(storage: Storage, build: Build, jobs: Mapping[str, JobDefinition],
                running: Mapping[str, int]) -> datetime | None:
    """Since when queued ``build`` could have started had its message arrived (its last
    send counts as a start of the wait), or None while it rightly waits: a dependency
    under way, its job's slots all taken (``running``: running builds by job), a retry's
    delay not yet over. A build of a job this config lacks is ready: a worker whose config
    has it may take it (the others give it back)."""
    since = build.heartbeat or _created(build)
    job = jobs.get(build.job_id)
    if job is not None and running.get(job.id, 0) >= job.concurrency:
        return None
    if build.retry_of is not None and job is not None and job.retries is not None:
        attempt = plan.attempt_of(build, lambda i: _get(storage, i)) - 1
        since = max(since, _created(build) + timedelta(seconds=job.retries.delay_before(
            max(attempt, 1))))
    for dep_id in build.dependency_builds.values():
        dep = _get(storage, dep_id)
        while dep is not None and not dep.state.ok \
                and (retry := storage.get_retry(dep.id)) is not None:
            dep = retry
        if dep is None:
            continue
        if not dep.state.finished:
            return None
        since = max(since, dep.finished or since)
    return since


def _running_by_job(storage: Storage) -> dict[str, int]:
    counts: dict[str, int] = {}
    for build in storage.list_builds(states=[BuildState.RUNNING]):
        counts[build.job_id] = counts.get(build.job_id, 0) + 1
    return counts


def lost_builds(storage: Storage, jobs: Mapping[str, JobDefinition], timeout: float,
                now: datetime) -> list[Build]:
    """The queued builds ready for longer than ``timeout`` seconds (their message lost)."""
    # only those sent longer ago than the timeout can be lost: the rest cost nothing more
    queued = [build for build in storage.list_builds(states=[BuildState.QUEUED])
              if (now - (build.heartbeat or _created(build))).total_seconds() > timeout]
    if not queued:
        return []
    running = _running_by_job(storage)
    lost = []
    for build in queued:
        since = ready_since(storage, build, jobs, running)
        if since is not None and (now - since).total_seconds() > timeout:
            lost.append(build)
    return lost


def holds_job(storage: Storage, build: Build, jobs: Mapping[str, JobDefinition],
              timeout: float, now: datetime) -> bool:
    """Whether queued ``build`` still counts as under way for its job's overlap: not
    once it is lost (ready for longer than ``timeout``), or it would hold the job forever."""
    since = ready_since(storage, build, jobs, _running_by_job(storage))
    return since is None or (now - since).total_seconds() <= timeout


def given_back(worker: str, why: str) -> str:
    """The note a queued build keeps when ``worker`` gives it back (its config differs):
    the failure of a build that no worker took names it."""
    return f"{GIVEN_BACK}{worker}: {why}"


def _note(build: Build) -> str:
    """``; <the last give-back note>`` of ``build``, or nothing."""
    at = (build.reason or "").find(GIVEN_BACK)
    return "" if at < 0 else f"; {(build.reason or '')[at:]}"


def _clock(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def sweep_queued(storage: Storage, jobs: Mapping[str, JobDefinition], send: SendBuild,
                 timeout: float) -> list[tuple[Build, str]]:
    """Re-send once each lost build never re-sent; fail those re-sent and lost again.
    Returns ``(build, "re-sent" | "failed")`` for what this call did."""
    now = storage.now()
    done: list[tuple[Build, str]] = []
    for build in lost_builds(storage, jobs, timeout, now):
        if build.heartbeat is None:
            reason = (f"re-sent at {_clock(now)}: not taken by a worker within "
                      f"{timeout:g}s (queued since {_clock(_created(build))}){_note(build)}")
            if storage.mark_resent(build.id, reason, first=True):
                send(build)
                logger.warning("build #%s %s: %s", build.id, build.job_id, reason)
                done.append((build, "re-sent"))
            continue
        assert build.heartbeat is not None
        reason = (f"never taken by a worker: queued since {_clock(_created(build))}, "
                  f"re-sent at {_clock(build.heartbeat)} (queue {build.queue!r}; "
                  f"executor.queued_timeout {timeout:g}s){_note(build)}")
        if storage.fail_queued(build.id, reason):
            logger.error("build #%s %s: %s", build.id, build.job_id, reason)
            done.append((build, "failed"))
    return done


def requeue(storage: Storage, send: SendBuild, build_ids: Sequence[int],
            by: Callable[[datetime], str] | None = None) -> list[Build]:
    """Send these queued builds to the workers again (``jobcontrol requeue``); each is
    recorded re-sent now, so ``queued_timeout`` counts from now. A build that is not
    queued is refused with :class:`BuildStateError` before anything is sent."""
    builds = [storage.get_build(build_id) for build_id in build_ids]
    for build in builds:
        if build.state is not BuildState.QUEUED or build.queue is None:
            raise BuildStateError(f"build {build.id} is {build.state}, not queued: only a "
                                 f"queued build can be requeued")
    now = storage.now()
    reason = by(now) if by else f"re-sent by hand at {_clock(now)}"
    sent = []
    for build in builds:
        if storage.mark_resent(build.id, reason):
            send(build)
            sent.append(storage.get_build(build.id))
    return sent
