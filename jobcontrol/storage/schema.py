"""The versioned schema: ``migrations/<dialect>/NNNN_name.sql``, applied in order.

Each applied migration is a row of ``jobcontrol_schema``; the highest version is the
schema's version. A backend applies the missing ones in one transaction (see
:meth:`jobcontrol.storage.sql.SqlStorage.install`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobcontrol.errors import StorageError

__all__ = ["SCHEMA_TABLE", "Migration", "load_migrations"]

#: the table recording applied migrations; created outside the migrations, per dialect
SCHEMA_TABLE = "jobcontrol_schema"

_MIGRATION_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One step of the schema: ``migrations/<dialect>/0001_initial.sql`` is version 1."""

    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """The migrations shipped for ``dialect``, in order; numbered 1, 2, 3... without gaps."""
    folder: Any = Path(__file__).parent / "migrations" / dialect
    if not folder.is_dir():  # not installed as files (a zip): ask the import system
        import importlib.resources  # not at start-up: it imports zipfile and more (~10 ms)

        folder = importlib.resources.files("jobcontrol.storage") / "migrations" / dialect
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise StorageError(f"the {dialect} migrations shipped with jobcontrol are not numbered "
                           f"1..N: {[m.version for m in found]} (a broken install?)")
    return found
