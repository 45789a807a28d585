"""The retention rules (:mod:`jobcontrol.retention`): pure decisions, no storage involved.

What the decisions do to a real storage is in ``test_prune.py``, on every backend.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from jobcontrol.config import RetentionPolicy
from jobcontrol.models import BuildState, BuildStub, LogCutoff
from jobcontrol.retention import judge_builds, log_cutoffs, may_have_old_logs

S = BuildState
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
DAY = 86400.0


def stub(build_id: int, state: BuildState = S.SUCCESS, days_ago: float = 0) -> BuildStub:
    """A build of job "j" that ended ``days_ago`` (unfinished ones started then)."""
    when = NOW - timedelta(days=days_ago)
    finished = when if state.finished else None
    return BuildStub(build_id, "j", state, when - timedelta(minutes=1), when, finished)


def kept(policy: RetentionPolicy, builds: list[BuildStub]) -> list[int]:
    """Ids of the builds that stay, given oldest first (as people write histories)."""
    verdicts = judge_builds(policy, sorted(builds, key=lambda b: -b.id), NOW)
    return sorted(v.build.id for v in verdicts if v.keep)


def test_unfinished_builds_always_stay() -> None:
    builds = [stub(1, S.QUEUED, 90), stub(2, S.RUNNING, 60), stub(3, S.FAILED, 30),
              stub(4, S.SUCCESS, 20), stub(5, S.FAILED, 10), stub(6, S.FAILED, 1)]
    assert kept(RetentionPolicy(keep_last=1), builds) == [1, 2, 4, 6]
    verdicts = {v.build.id: v.reason for v in judge_builds(
        RetentionPolicy(keep_last=1), sorted(builds, key=lambda b: -b.id), NOW)}
    assert verdicts[1] == "queued" and verdicts[2] == "running"


def test_the_latest_success_stays_however_old() -> None:
    builds = [stub(1, S.SUCCESS, 100), stub(2, S.SUCCESS, 90)] + [
        stub(n, S.FAILED, 50 - n) for n in range(3, 10)
    ]
    assert kept(RetentionPolicy(keep_last=2, keep_for=5 * DAY), builds) == [2, 8, 9]


def test_a_skip_after_the_latest_success_is_not_kept_for_it() -> None:
    # a skip is never a success: status, freshness and the outdated rules read the success
    builds = [stub(1, S.SUCCESS, 40), stub(2, S.SUCCESS, 30), stub(3, S.SKIPPED, 20),
              stub(4, S.SKIPPED, 10), stub(5, S.FAILED, 5)]
    assert kept(RetentionPolicy(keep_last=1), builds) == [2, 5]
    reasons = [v.reason for v in judge_builds(
        RetentionPolicy(keep_last=1), sorted(builds, key=lambda b: -b.id), NOW) if v.keep]
    assert reasons == ["one of the last 1",
                       "latest success (status, freshness, outdated checks and !retval use it)"]


# ids 1..10 of failed builds, ended 10, 9, ... 1 days ago: only the count and age rules act
AGED = [stub(n, S.FAILED, 11 - n) for n in range(1, 11)]


@pytest.mark.parametrize(("policy", "expected"), [
    pytest.param(RetentionPolicy(keep_last=3), [8, 9, 10], id="keep_last"),
    pytest.param(RetentionPolicy(keep_for=4.5 * DAY), [7, 8, 9, 10], id="keep_for"),
    # kept when ANY rule keeps it: the last 3 OR younger than 6.5 days
    pytest.param(RetentionPolicy(keep_last=3, keep_for=6.5 * DAY), [5, 6, 7, 8, 9, 10],
                 id="either-age-wins"),
    pytest.param(RetentionPolicy(keep_last=6, keep_for=1.5 * DAY), [5, 6, 7, 8, 9, 10],
                 id="either-count-wins"),
    pytest.param(RetentionPolicy(keep_last=100), list(range(1, 11)), id="fewer-than-n"),
    pytest.param(RetentionPolicy(logs={logging.DEBUG: DAY}), list(range(1, 11)),
                 id="no-limit-keeps-all"),
    # exactly keep_for old: gone ("less than keep_for ago" stays)
    pytest.param(RetentionPolicy(keep_for=3 * DAY), [9, 10], id="boundary"),
    # a keep_for far beyond any date must not overflow
    pytest.param(RetentionPolicy(keep_for=1e15), list(range(1, 11)), id="centuries"),
])
def test_keep_rules(policy: RetentionPolicy, expected: list[int]) -> None:
    assert kept(policy, AGED) == expected


def test_keep_last_counts_builds_of_every_state() -> None:
    builds = [stub(1, S.FAILED, 9), stub(2, S.FAILED, 8), stub(3, S.RUNNING, 1),
              stub(4, S.CANCELLED, 1)]
    # the last two are #4 and the running #3: #2 goes although only one finished build stays
    assert kept(RetentionPolicy(keep_last=2), builds) == [3, 4]


def test_delete_reasons_name_the_rules() -> None:
    verdicts = list(judge_builds(RetentionPolicy(keep_last=1, keep_for=DAY),
                                 [stub(2, S.FAILED, 0), stub(1, S.FAILED, 3)], NOW))
    assert [(v.keep, v.reason) for v in verdicts] == [
        (True, "one of the last 1"),
        (False, "not one of the last 1 and ended 24h ago or more"),
    ]


def test_builds_must_come_newest_first() -> None:
    with pytest.raises(ValueError, match="newest first"):
        list(judge_builds(RetentionPolicy(keep_last=1), [stub(1), stub(2)], NOW))


def test_log_cutoffs_cover_their_level_and_below() -> None:
    policy = RetentionPolicy(logs={logging.INFO: 30 * DAY, logging.DEBUG: 7 * DAY})
    assert log_cutoffs(policy, NOW) == [
        LogCutoff(logging.DEBUG, NOW - timedelta(days=7)),
        LogCutoff(logging.INFO, NOW - timedelta(days=30)),
    ]
    # DEBUG kept longer than INFO: the INFO entry covers DEBUG records sooner anyway
    policy = RetentionPolicy(logs={logging.DEBUG: 30 * DAY, logging.INFO: 7 * DAY})
    assert log_cutoffs(policy, NOW) == [LogCutoff(logging.INFO, NOW - timedelta(days=7))]
    # an age beyond any date matches nothing, and is left out
    policy = RetentionPolicy(logs={logging.DEBUG: DAY, logging.ERROR: 1e15})
    assert log_cutoffs(policy, NOW) == [LogCutoff(logging.DEBUG, NOW - timedelta(days=1))]
    assert log_cutoffs(RetentionPolicy(keep_last=3), NOW) == []


def test_only_finished_builds_older_than_a_cutoff_may_hold_old_logs() -> None:
    cutoffs = [LogCutoff(logging.DEBUG, NOW - timedelta(days=7)),
               LogCutoff(logging.INFO, NOW - timedelta(days=30))]
    assert may_have_old_logs(stub(1, S.SUCCESS, 8), cutoffs)
    assert not may_have_old_logs(stub(2, S.SUCCESS, 6), cutoffs)  # created after both
    assert not may_have_old_logs(stub(3, S.RUNNING, 60), cutoffs)
    assert not may_have_old_logs(stub(4, S.SUCCESS, 60), [])
