"""Shared fixtures. ``storage`` runs a test once per backend in :data:`STORAGE_BACKENDS`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcontrol.storage import Storage, open_storage

#: every backend the storage contract suite runs against
STORAGE_BACKENDS = ["memory", "sqlite"]


def make_storage(kind: str, tmp_path: Path) -> Storage:
    """A fresh, empty storage of backend ``kind``, its files (if any) under ``tmp_path``."""
    if kind == "memory":
        return open_storage("memory://")
    if kind == "sqlite":
        return open_storage("sqlite:///jobcontrol.db", base_dir=tmp_path)
    raise ValueError(f"unknown storage backend {kind!r}")


@pytest.fixture(params=STORAGE_BACKENDS, ids=STORAGE_BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """An empty storage of each backend in turn, closed after the test."""
    opened = make_storage(request.param, tmp_path)
    try:
        yield opened
    finally:
        opened.close()
