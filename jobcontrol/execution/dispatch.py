"""Queued builds sent to the workers when they can start, by whoever records the end that
lets them: as Celery chains and Dagster's step dispatch do, no build is looked at again and
again while it waits.

Two things hold a queued remote build back, and each is let go by a build's end:

- *its dependencies*: ``build --async`` sends only the builds that wait for no build of its
  plan; a dependent is sent when its last upstream ends (the worker that ran it, or whoever
  recorded it abandoned, cancelled, failed). A dependency that ended without a result and
  will not be retried *blocks* it: it is cancelled with the reason, and so, in turn, what
  waits for it. A dependency to be retried holds it until its chain of retries ends.
- *its job's slots* (``concurrency``): a build whose claim is refused records so
  (:meth:`~jobcontrol.storage.base.Storage.wait_for_slot`) and is dropped; when a build of
  the job ends, the oldest such build is sent (first in, first out).

The storage stays the arbiter: a message only says "look at build N", and a worker claims
it (``queued → running`` once) only if it is ready then. Of two that race, at least one
sends (a duplicate costs a message): two upstreams ending at once each commit their end
before judging the dependent, so the second to judge sees both ended; a build refused a
slot records its wait, then lets the ends being written commit before it tries the claim
again, so either that claim sees the slot freed or the end finds it waiting. An end with
nothing waiting for it costs one indexed read, and no commit of its own. A
message lost on the way is recovered by ``executor.queued_timeout`` (see
:mod:`jobcontrol.execution.queued`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobcontrol.models import Build, BuildState
from jobcontrol.storage.base import Storage

if TYPE_CHECKING:
    from jobcontrol.config import JobDefinition

logger = logging.getLogger(__name__)

#: most builds of one job the end of one of its builds hands a slot to: one slot frees
SLOTS_FREED = 1


@dataclass(frozen=True)
class Ready:
    """Every dependency succeeded: ``consumed`` is ``{job_id: build_id}`` to record."""

    consumed: dict[str, int]


@dataclass(frozen=True)
class Waiting:
    """A dependency is queued or running, or will be retried."""


@dataclass(frozen=True)
class Blocked:
    """A dependency ended without a result and will not be retried: ``reason``."""

    reason: str


#: whether a queued build's dependencies let it start (a remote worker judges)
Judge = Callable[[Build], "Ready | Waiting | Blocked"]


def waits_in_plan(build: Build, plan: Iterable[Build]) -> bool:
    """Whether ``build`` waits for one of ``plan``'s builds (queued with it): then the end
    of that build sends it, never its submitter."""
    ids = {other.id for other in plan}
    return any(dep_id in ids for dep_id in build.dependency_builds.values())


def first_attempt(storage: Storage, build: Build) -> Build:
    """The build ``build`` retries, and so on back: the one its dependents name."""
    while build.retry_of is not None:
        build = storage.get_build(build.retry_of)
    return build


def dependents_of(jobs: Mapping[str, JobDefinition], job_id: str) -> list[str]:
    """The jobs that depend on ``job_id`` directly."""
    return [job.id for job in jobs.values() if job_id in job.dependencies]


class Dispatcher:
    """Sends (``send``) or cancels the queued builds that an end lets go; ``judge`` says
    whether a build's dependencies are met; ``commit`` commits the ends this process
    recorded and left to commit with its next write."""

    def __init__(self, storage: Storage, jobs: Mapping[str, JobDefinition],
                 send: Callable[[Build], None], judge: Judge,
                 commit: Callable[[], None]) -> None:
        self.storage = storage
        self.jobs = jobs
        self.send = send
        self.judge = judge
        self.commit = commit

    def after(self, ended: Iterable[Build]) -> list[tuple[Build, str]]:
        """Act on the queued builds that these recorded ends let go (an end is committed
        first where something waits for it): each ready one sent, each blocked one
        cancelled with the reason (and what waits for it looked at in turn). Returns
        ``(build, "sent" | "cancelled")`` for each."""
        todo = list(ended)
        done: list[tuple[Build, str]] = []
        while todo:
            end = todo.pop(0)
            found = self._let_go_by(end)
            if found:
                # judged once the end is committed: of two upstreams ending at once, the
                # second to look sees the first ended; and a build sent sees its upstream
                self.commit()
            for build in found:
                outcome = self._release(build)
                if outcome is not None:
                    done.append((outcome, str(outcome.state) if outcome.state.finished
                                 else "sent"))
                    if outcome.state.finished:
                        todo.append(outcome)
        return done

    def _let_go_by(self, end: Build) -> list[Build]:
        """The queued builds that ``end`` may let start: those waiting for it (or for the
        chain of retries it belongs to), then the oldest waiting for a slot of its job."""
        first = first_attempt(self.storage, end)
        dependents = dependents_of(self.jobs, first.job_id)
        found = [build for build in (self.storage.consumers(first.id, first.job_id, dependents)
                                     if dependents else [])
                 if build.state is BuildState.QUEUED]
        if end.started is not None:  # it held a slot of its job
            found += self.storage.slot_waiters(end.job_id, limit=SLOTS_FREED)
        return found

    def _release(self, build: Build) -> Build | None:
        """Send ``build`` if it is ready, cancel it if it is blocked; returns it as it now
        stands, or None while it waits."""
        state = self.judge(build)
        if isinstance(state, Ready):
            self.send(build)
            logger.debug("build #%s %s: sent, its wait over", build.id, build.job_id)
            return build
        if isinstance(state, Blocked):
            cancelled = self.storage.finish_build(build.id, BuildState.CANCELLED,
                                                  reason=state.reason)
            if cancelled.state is BuildState.CANCELLED and cancelled.reason == state.reason:
                logger.info("build #%s %s: cancelled: %s", build.id, build.job_id,
                            state.reason)
                return cancelled
        return None

