"""Argument checks every storage backend shares, so all of them accept and refuse alike."""

from __future__ import annotations

from jobcontrol.models import BuildState


def row_limit(limit: int | None) -> int | None:
    """How many rows a listing's ``limit`` lets through: all for None, none below one (the
    one reading of every backend: SQLite takes a negative LIMIT for none, PostgreSQL refuses
    it, and a slice drops items from the end)."""
    return None if limit is None else max(limit, 0)


def check_concurrency(concurrency: int) -> None:
    """:class:`ValueError` for a ``claim_build`` limit that would refuse every build."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")


def check_finished_state(state: BuildState | str) -> BuildState:
    """``state`` as a :class:`BuildState`; :class:`ValueError` unless it is a finished one."""
    state = BuildState(state)
    if not state.finished:
        raise ValueError(f"a build cannot be finished with state {state.value!r}")
    return state
