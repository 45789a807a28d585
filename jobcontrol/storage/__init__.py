"""Storages of builds, picked by URL: ``open_storage("sqlite:///jobcontrol.db")``.

Backends are imported only when a URL asks for them: importing jobcontrol never loads a
database driver it does not use. A backend is a :class:`Storage` subclass with a
``from_url(url, base_dir=None)`` class method; add it to :data:`BACKENDS` under its scheme.
"""

from __future__ import annotations

import importlib
import os
import re

from jobcontrol.errors import StorageError
from jobcontrol.storage.base import Storage

__all__ = ["BACKENDS", "Storage", "open_storage", "redact_url"]

#: URL scheme → ``"module:Class"`` of the backend that opens it
BACKENDS: dict[str, str] = {
    "memory": "jobcontrol.storage.memory:MemoryStorage",
    "sqlite": "jobcontrol.storage.sqlite:SQLiteStorage",
    "postgresql": "jobcontrol.storage.postgresql:PostgreSQLStorage",
    "postgres": "jobcontrol.storage.postgresql:PostgreSQLStorage",
}


def open_storage(url: str, base_dir: str | os.PathLike[str] | None = None) -> Storage:
    """Open the storage ``url`` names; relative file paths resolve against ``base_dir``.

    ``memory://``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``postgresql://user:password@host:5432/db`` (``postgres://`` too). Opening is cheap:
    nothing is connected or created until the storage is first used.
    Raises :class:`StorageError` for an unknown scheme or a URL the backend cannot open.
    """
    scheme, sep, _ = url.partition("://")
    target = BACKENDS.get(scheme) if sep else None
    if target is None:
        supported = ", ".join(f"{name}://" for name in sorted(BACKENDS))
        raise StorageError(
            f"unsupported storage URL {redact_url(url)!r}: expected one of {supported}"
        )
    module_name, _, class_name = target.partition(":")
    backend = getattr(importlib.import_module(module_name), class_name)
    storage: Storage = backend.from_url(url, base_dir=base_dir)
    return storage


# greedy up to the last "@" of the netloc: a password may hold an unescaped "@"
_NETLOC_PASSWORD = re.compile(r"^(?P<head>[^:/?#]+://[^:@/?#]*):[^/?#]*@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` fit to print: a password (``user:secret@``, ``?password=``) becomes ``***``."""
    url = _NETLOC_PASSWORD.sub(r"\g<head>:***@", url, count=1)
    return _QUERY_PASSWORD.sub(r"\g<head>***", url)
