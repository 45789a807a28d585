"""Every listing that takes a ``limit`` reads it alike, on every backend: at most that many,
newest first, and nothing for a limit below one (never "no limit", never an error, never all
but the last)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobcontrol.models import BuildState, RunTrigger
from jobcontrol.storage import Storage
from tests.test_storage_contract import claim, record

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def filled(storage: Storage) -> int:
    """Three of everything that is listed with a limit; the id of a build with three log
    lines."""
    for n in range(3):
        storage.create_run(RunTrigger.CLI, by="alice", targets=["job"])
        storage.claim_scheduled_run("job", START + timedelta(minutes=n), host="h", pid=1)
        storage.pause_job("job", by="alice")
        storage.resume_job("job", by="alice")
    build = claim(storage)
    storage.append_logs(build.id, [record(f"line {n}") for n in range(3)])
    storage.finish_build(build.id, BuildState.SUCCESS)
    for _ in range(2):
        storage.finish_build(claim(storage).id, BuildState.SUCCESS)
    return build.id


LISTINGS: dict[str, Callable[[Storage, int, int], list[Any]]] = {
    "list_builds": lambda s, _, limit: s.list_builds(limit=limit),
    "build_stubs": lambda s, _, limit: s.build_stubs("job", limit=limit),
    "get_logs": lambda s, build_id, limit: s.get_logs(build_id, limit=limit),
    "pause_history": lambda s, _, limit: s.pause_history("job", limit=limit),
    "list_runs": lambda s, _, limit: s.list_runs(limit=limit),
    "scheduled_runs": lambda s, _, limit: s.scheduled_runs("job", limit=limit),
}


@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_a_limit_caps_a_listing_and_below_one_gives_nothing(storage: Storage, listing: str
                                                           ) -> None:
    build_id = filled(storage)
    read = LISTINGS[listing]
    everything = read(storage, build_id, 100)
    assert len(everything) == 3
    assert read(storage, build_id, 2) == everything[:2]
    assert read(storage, build_id, 0) == []
    assert read(storage, build_id, -1) == []
