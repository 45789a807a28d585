"""Retention: which builds and log records a job's ``retention:`` policy removes. Pure.

Given a policy, a job's builds (newest first) and "now", :func:`judge_builds` says of each
build whether it stays, and why; :func:`log_cutoffs` turns the per-level ``logs:`` rules into
the cutoffs the storage deletes log records by. :mod:`jobcontrol.pruner` acts on them.

The rules, in order (the first that applies decides):

1. A ``queued`` or ``running`` build stays: it is still being written.
2. The job's latest ``success`` stays (``skipped`` builds after it do not replace it: a skip
   is never a success): status and freshness show it, the outdated rules read its definition
   hash and the dependency builds it consumed, dependents' ``!retval`` reads its return
   value and their outdated rule compares its id with the ids they consumed.
3. With neither ``keep_last`` nor ``keep_for`` set, every build stays.
4. A build stays when it satisfies ANY keep rule that is set: it is one of the job's last
   ``keep_last`` builds (counting builds of every state, the running ones too), OR it ended
   less than ``keep_for`` ago (its finish time; its start or creation time if it has none).
5. Every other build goes.

Builds an older build *consumed* (``dependency_builds``) are not kept for that: consumed
builds are recorded by id only, and the outdated rules compare those ids with the
dependency's latest ``success`` (kept by rule 2), never reading the consumed build itself.
So a pruned consumed build changes no outdated verdict; ``show`` still names its id.

Log records: ``logs: {DEBUG: 7d, INFO: 30d}`` — an entry applies to records of its level and
every level below it, and a record goes as soon as any entry applies (here DEBUG and lower
after 7 days, INFO and levels between DEBUG and INFO after 30; WARNING and above stay as long
as their build). Records of running builds are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobcontrol.config import RetentionPolicy
from jobcontrol.models import BuildState, BuildStub, LogCutoff
from jobcontrol.timeutil import format_duration

__all__ = ["Verdict", "judge_builds", "log_cutoffs", "may_have_old_logs"]


@dataclass(frozen=True)
class Verdict:
    """What retention decides for one build: ``keep`` it or not, and a reason for people."""

    build: BuildStub
    keep: bool
    reason: str


def judge_builds(
    policy: RetentionPolicy, builds: Iterable[BuildStub], now: datetime
) -> Iterator[Verdict]:
    """A :class:`Verdict` for each of a job's builds, which must come newest first and be
    all of the job's builds (the latest success and the ``keep_last`` count need every one).

    Lazy: a job with a million builds is judged page by page.
    """
    seen_success = False
    previous: int | None = None
    for rank, build in enumerate(builds, start=1):
        if previous is not None and build.id >= previous:
            raise ValueError(f"builds must come newest first: {build.id} after {previous}")
        previous = build.id
        reason = _keep_reason(policy, build, rank, now, seen_success)
        seen_success = seen_success or build.state is BuildState.SUCCESS
        if reason is not None:
            yield Verdict(build, True, reason)
        else:
            yield Verdict(build, False, _delete_reason(policy))


def _keep_reason(policy: RetentionPolicy, build: BuildStub, rank: int, now: datetime,
                 seen_success: bool) -> str | None:
    """Why ``build`` stays, or None when no rule keeps it (see the module's rules)."""
    if not build.state.finished:
        return f"{build.state.value}"
    if build.state is BuildState.SUCCESS and not seen_success:
        return "latest success (status, freshness, outdated checks and !retval use it)"
    if policy.keep_last is None and policy.keep_for is None:
        return "no keep_last or keep_for"
    if policy.keep_last is not None and rank <= policy.keep_last:
        return f"one of the last {policy.keep_last}"
    # seconds, not timedelta: a keep_for of centuries must not overflow
    if policy.keep_for is not None and (now - build.ended).total_seconds() < policy.keep_for:
        return f"ended less than {format_duration(policy.keep_for)} ago"
    return None


def _delete_reason(policy: RetentionPolicy) -> str:
    parts = []
    if policy.keep_last is not None:
        parts.append(f"not one of the last {policy.keep_last}")
    if policy.keep_for is not None:
        parts.append(f"ended {format_duration(policy.keep_for)} ago or more")
    return " and ".join(parts)


def log_cutoffs(policy: RetentionPolicy, now: datetime) -> list[LogCutoff]:
    """The policy's ``logs:`` entries as cutoffs at ``now``, lowest level first.

    An entry that another one makes redundant (a higher or equal level, a later or equal
    cutoff) is left out, and so is one older than any datetime (it matches nothing).
    """
    cutoffs: list[LogCutoff] = []
    for level, seconds in sorted(policy.logs.items()):
        try:
            before = now - timedelta(seconds=seconds)
        except OverflowError:
            continue
        cutoffs = [c for c in cutoffs if c.before > before]  # this one covers them
        cutoffs.append(LogCutoff(level, before))
    return cutoffs


def may_have_old_logs(build: BuildStub, cutoffs: Sequence[LogCutoff]) -> bool:
    """Whether a kept build can hold log records the cutoffs delete: it has finished, and
    was created before the latest cutoff (its records are no older than the build)."""
    return bool(cutoffs) and build.state.finished and build.created < max(
        c.before for c in cutoffs
    )
