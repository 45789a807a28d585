"""The storage's commit timer: an outcome left for the next write is committed within its
delay whatever the caller does next (see jobcontrol/storage/commit_timer.py)."""

from __future__ import annotations

import threading

from jobcontrol.storage.commit_timer import CommitTimer


class Commits:
    """A ``commit`` that counts its calls and answers ``done`` (True: nothing left)."""

    def __init__(self, done: bool = True) -> None:
        self.done = done
        self.calls = 0
        self.called = threading.Event()

    def __call__(self) -> bool:
        self.calls += 1
        self.called.set()
        return self.done


def test_what_is_armed_is_committed_within_its_delay() -> None:
    commits = Commits()
    timer = CommitTimer(commits)
    try:
        timer.arm(0.05)
        assert commits.called.wait(10), "never committed"
    finally:
        timer.close()
    assert commits.calls == 1


def test_a_sooner_delay_wakes_a_timer_asleep_for_a_later_one() -> None:
    """The thread sleeps until the due time it knows; a sooner one wakes it."""
    commits = Commits()
    timer = CommitTimer(commits)
    try:
        timer.arm(3600)
        timer.disarm()  # committed by a write; the thread still sleeps for an hour
        timer.arm(0.05)
        assert commits.called.wait(10), "the sooner commit waited for the later one"
    finally:
        timer.close()


def test_what_cannot_be_written_is_tried_again() -> None:
    commits = Commits(done=False)
    timer = CommitTimer(commits, retry=0.05)
    try:
        timer.arm(0.01)
        assert commits.called.wait(10)
        commits.called.clear()
        assert commits.called.wait(10), "not tried again"
    finally:
        timer.close()
    assert commits.calls >= 2


def test_close_stops_the_thread() -> None:
    others = set(threading.enumerate())
    timer = CommitTimer(Commits())
    timer.arm(3600)
    [thread] = set(threading.enumerate()) - others
    timer.close()
    assert not thread.is_alive()
    timer.arm(0.01)  # closed: nothing starts again
    assert set(threading.enumerate()) - others == set()
