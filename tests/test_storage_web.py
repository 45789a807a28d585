"""The storage contract of the web UI's sessions and failed logins, on every backend."""

from __future__ import annotations

from datetime import timedelta

from jobcontrol.storage import Storage
from jobcontrol.timeutil import utcnow


def test_a_web_session_lasts_until_it_expires_or_ends(storage: Storage) -> None:
    now = utcnow()
    storage.start_web_session("s1", "alice", now, now + timedelta(hours=1))
    storage.start_web_session("s2", "token", now, now + timedelta(seconds=1))
    assert storage.web_session_user("s1", now) == "alice"
    assert storage.web_session_user("s2", now) == "token"
    assert storage.web_session_user("s2", now + timedelta(seconds=1)) is None  # expired
    assert storage.web_session_user("nope", now) is None
    storage.end_web_session("s1")
    storage.end_web_session("s1")  # again: nothing to end
    assert storage.web_session_user("s1", now) is None
    # a new session forgets the expired ones (s2 included), not the others
    later = now + timedelta(minutes=5)
    storage.start_web_session("s3", "bob", later, later + timedelta(hours=1))
    storage.start_web_session("s3", "eve", later, later + timedelta(hours=9))  # taken: kept
    assert storage.web_session_user("s3", later) == "bob"
    assert storage.web_session_user("s2", now) is None


def test_login_failures_are_counted_per_key_and_forgotten(storage: Storage) -> None:
    now = utcnow()
    times = [now + timedelta(seconds=n) for n in range(3)]
    for at in times:
        storage.record_login_failure(["user:alice", "address:192.0.2.7"], at,
                                     forget_before=now - timedelta(minutes=15))
    storage.record_login_failure(["user:bob'; --"], times[2], now - timedelta(minutes=15))
    assert storage.login_failures("user:alice", now) == times
    assert storage.login_failures("address:192.0.2.7", times[1]) == times[1:]
    assert storage.login_failures("user:bob'; --", now) == [times[2]]
    assert storage.login_failures("user:carol", now) == []
    storage.record_login_failure(["user:carol"], times[2], forget_before=times[1])
    assert storage.login_failures("user:alice", now - timedelta(hours=1)) == times[1:]
