"""The named query files of the SQL backends (``jobcontrol/storage/queries/*.sql``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobcontrol.errors import StorageError
from jobcontrol.storage import queries
from jobcontrol.storage.queries import BUILD_COLUMNS, load_queries

STORAGE = Path(queries.__file__).parent.parent


def test_every_query_the_code_names_is_in_the_files() -> None:
    named = set()
    for module in STORAGE.glob("*.py"):
        named |= set(re.findall(r'self\.sql\["(\w+)"', module.read_text(encoding="utf-8")))
        named |= set(re.findall(r'self\.sql\["(\w+)" if', module.read_text(encoding="utf-8")))
        named |= set(re.findall(r'else "(\w+)"\]', module.read_text(encoding="utf-8")))
    assert len(named) > 30
    common = load_queries("sqlite")
    postgresql = load_queries("postgresql", "%s")
    assert named - set(postgresql) == set()
    # PostgreSQL's own queries are not run by SQLite
    assert named - set(common) == {n for n in named - set(common) if n in postgresql}


def test_a_dialect_file_replaces_common_queries_by_name() -> None:
    sqlite, postgresql = load_queries("sqlite"), load_queries("postgresql", "%s")
    assert sqlite["build_state_locked"] == "SELECT state FROM builds WHERE id = ?"
    assert postgresql["build_state_locked"] == "SELECT state FROM builds WHERE id = %s FOR UPDATE"
    assert postgresql["fetch_build"] == (
        f"SELECT {', '.join(BUILD_COLUMNS)} FROM builds WHERE id = %s")
    assert "advisory_lock" not in sqlite
    assert not any("?" in text for text in postgresql.values())


def test_a_query_file_is_read_strictly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "common.sql").write_text(
        "-- header\n\n-- name: one\n-- why\nSELECT 1\n\n-- name: one\nSELECT 2\n")
    monkeypatch.setattr(queries, "__file__", str(tmp_path / "__init__.py"))
    with pytest.raises(StorageError, match="'one' is named twice"):
        queries._read_queries("common.sql")
    (tmp_path / "common.sql").write_text("-- name: empty\n-- nothing but a comment\n")
    with pytest.raises(StorageError, match="'empty' is empty"):
        queries._read_queries("common.sql")


def test_opening_a_sqlite_storage_imports_no_resource_machinery(tmp_path: Path) -> None:
    """The queries and migrations are read as files: a dialect with no query file of its
    own (SQLite) must not send every command through ``importlib.resources`` (it imports
    zipfile and more: ~10 ms of each command's start-up)."""
    import subprocess
    import sys

    code = ("import sys; from jobcontrol.storage import open_storage; "
            f"s = open_storage('sqlite:///{tmp_path / 'jobs.db'}'); s.install(); s.close(); "
            "print(sorted(m for m in sys.modules if m.startswith('importlib.resources')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parent.parent)
    assert done.stdout.strip() == "[]", done.stdout
