"""The storage contract of housekeeping (what ``jobcontrol prune`` uses), on every backend."""

from __future__ import annotations

import logging
from datetime import timedelta

from jobcontrol.models import BuildState, BuildStub, LogCutoff, LogRecord, ProgressItem
from jobcontrol.storage import Storage
from jobcontrol.storage.base import DELETE_BATCH
from jobcontrol.timeutil import utcnow
from tests.test_storage_contract import built, claim, record

S = BuildState
DEBUG, INFO, WARNING = logging.DEBUG, logging.INFO, logging.WARNING


def test_build_stubs_newest_first_and_paged(storage: Storage) -> None:
    a1 = built(storage, "a", S.SUCCESS)
    built(storage, "b", S.FAILED)
    a2 = built(storage, "a", S.FAILED)
    a3 = built(storage, "a", S.RUNNING)
    stubs = storage.build_stubs("a")
    assert [s.id for s in stubs] == [a3.id, a2.id, a1.id]
    full = storage.get_build(a1.id)
    assert stubs[-1] == BuildStub(a1.id, "a", S.SUCCESS, full.created,  # type: ignore[arg-type]
                                  full.started, full.finished)
    assert stubs[0].finished is None and stubs[0].ended == stubs[0].started
    assert stubs[-1].ended == full.finished
    assert [s.id for s in storage.build_stubs("a", limit=2)] == [a3.id, a2.id]
    assert [s.id for s in storage.build_stubs("a", before_id=a2.id)] == [a1.id]
    assert [s.id for s in storage.build_stubs("a", before_id=a3.id, limit=1)] == [a2.id]
    assert storage.build_stubs("nobody") == []


def test_delete_builds_takes_logs_and_progress_and_spares_running(storage: Storage) -> None:
    done = [built(storage, "job", S.SUCCESS), built(storage, "job", S.FAILED)]
    running = built(storage, "job", S.RUNNING)
    other = built(storage, "other", S.SUCCESS)
    for build in [*done, running, other]:
        storage.append_logs(build.id, [record("one"), record("two")])
        storage.set_progress(build.id, [ProgressItem((), 1, 2)])
    ids = [b.id for b in done] + [running.id, 9999, done[0].id]
    assert storage.count_logs(ids) == 6  # unknown ids count nothing, repeats count once
    assert storage.delete_builds(ids) == 2
    assert [s.id for s in storage.build_stubs("job")] == [running.id]
    for build in done:
        assert storage.get_logs(build.id) == [] and storage.get_progress(build.id) == []
    for build in (running, other):
        assert len(storage.get_logs(build.id)) == 2
        assert len(storage.get_progress(build.id)) == 1
    assert storage.delete_builds([]) == 0


def test_delete_builds_beyond_one_batch(storage: Storage) -> None:
    builds = [built(storage, "job", S.SUCCESS) for _ in range(DELETE_BATCH + 20)]
    storage.append_logs(builds[-1].id, [record("last")])
    keep = builds[0]
    assert storage.delete_builds([b.id for b in builds[1:]]) == len(builds) - 1
    assert [s.id for s in storage.build_stubs("job")] == [keep.id]


def test_count_and_delete_logs_by_level_and_age(storage: Storage) -> None:
    now = utcnow()
    old, new = now - timedelta(days=10), now - timedelta(hours=1)
    build = built(storage, "job", S.SUCCESS)
    other = built(storage, "job", S.FAILED)
    entries = [(DEBUG, old), (DEBUG, new), (INFO, old), (INFO, new), (WARNING, old), (5, old),
               (15, old)]
    for target in (build, other):
        storage.append_logs(target.id, [LogRecord(when, level, "t", f"{level}@{when:%d}")
                                        for level, when in entries])
    week = now - timedelta(days=7)
    debug_week = [LogCutoff(DEBUG, week)]
    assert storage.count_logs([build.id], debug_week) == 2  # DEBUG and level 5, both old
    assert storage.count_logs([build.id], []) == 0
    assert storage.count_logs([build.id]) == len(entries)
    # a record goes when any cutoff matches: every DEBUG and level 5 one by the first, the
    # old INFO and level 15 (it is below INFO) ones by the second, WARNING by neither
    cutoffs = [LogCutoff(DEBUG, now), LogCutoff(INFO, week)]
    assert storage.count_logs([build.id], cutoffs) == 5
    assert storage.delete_logs([build.id], cutoffs) == 5
    left = storage.get_logs(build.id)
    assert [(r.seq, r.level) for r in left] == [(4, INFO), (5, WARNING)]  # seqs kept
    assert [r.seq for r in storage.get_logs(build.id, after_seq=4)] == [5]
    assert [r.seq for r in storage.get_logs(build.id, after_seq=1, limit=1)] == [4]
    assert [r.seq for r in storage.get_logs(build.id, min_level=WARNING)] == [5]
    assert storage.delete_logs([build.id], cutoffs) == 0  # nothing more to match
    assert storage.delete_logs([build.id], []) == 0  # no cutoff: nothing goes
    assert len(storage.get_logs(other.id)) == len(entries)  # other builds untouched


def test_delete_logs_spares_a_log_still_being_written(storage: Storage) -> None:
    running = claim(storage)
    old = utcnow() - timedelta(days=30)
    storage.append_logs(running.id, [LogRecord(old, DEBUG, "t", "early")])
    everything = [LogCutoff(logging.CRITICAL, utcnow())]
    assert storage.delete_logs([running.id], everything) == 0
    storage.append_logs(running.id, [record("more")])
    assert [r.seq for r in storage.get_logs(running.id)] == [1, 2]


def test_delete_logs_beyond_one_batch(storage: Storage) -> None:
    builds = [built(storage, "job", S.SUCCESS) for _ in range(DELETE_BATCH + 5)]
    old = utcnow() - timedelta(days=1)
    for build in (builds[0], builds[-1]):
        storage.append_logs(build.id, [LogRecord(old, DEBUG, "t", "x"), record("kept")])
    ids = [b.id for b in builds]
    cutoffs = [LogCutoff(DEBUG, utcnow())]
    assert storage.count_logs(ids, cutoffs) == 2
    assert storage.delete_logs(ids, cutoffs) == 2
    assert storage.count_logs(ids) == 2
