"""``jobcontrol check`` (a real process): it binds each job's arguments to its function's
signature, and opens the storage and writes to it, unless told ``--no-storage``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg2
import pytest

from jobcontrol.storage.sql import load_migrations
from tests.processes import run
from tests.support import make_project

CONFIG = """\
jobs:
  - id: good
    function: jobfuncs.make
    args: [good]
  - id: typo
    function: jobfuncs.make
    kwargs:
      tag: t
      valeu: 1
  - id: missing
    function: jobfuncs.make
  - id: consumer
    function: jobfuncs.make
    dependencies: [good]
    kwargs: {tag: c, value: !retval good}
  - id: too_many
    function: jobfuncs.noop
    args: [a, b]
    cleanup_function: jobfuncs.kill_self
"""

GOOD = """\
jobs:
  - id: good
    function: jobfuncs.make
    args: [good]
  - id: consumer
    function: jobfuncs.make
    dependencies: [good]
    kwargs: {tag: c, value: !retval good}
"""


def test_check_binds_the_arguments_to_each_signature(tmp_path: Path) -> None:
    config = make_project(tmp_path, CONFIG)
    code, out, err = run("-c", str(config), "check")
    assert code == 2, out + err
    assert out == ""
    lines = err.splitlines()
    assert lines == [
        f"Error: {config}:8:7: job 'typo': function 'jobfuncs.make' cannot take its args and "
        f"kwargs: got an unexpected keyword argument 'valeu' "
        f"(the signature is (tag: 'str', value: 'object' = None) -> 'dict')",
        f"Error: {config}:10:5: job 'missing': function 'jobfuncs.make' cannot take its args "
        f"and kwargs: missing a required argument: 'tag' "
        f"(the signature is (tag: 'str', value: 'object' = None) -> 'dict')",
        f"Error: {config}:18:11: job 'too_many': function 'jobfuncs.noop' cannot take its "
        f"args and kwargs: too many positional arguments "
        f"(the signature is (tag: 'str' = '') -> 'str')",
        f"Error: {config}:19:23: job 'too_many': cleanup_function 'jobfuncs.kill_self' "
        f"cannot take the build: too many positional arguments "
        f"(the signature is () -> 'None')",
    ]


def test_check_opens_and_writes_the_storage(tmp_path: Path) -> None:
    config = make_project(tmp_path, GOOD)
    code, out, err = run("-c", str(config), "check")
    assert code == 0, err
    database = tmp_path / "jobcontrol.db"
    version = len(load_migrations("sqlite"))
    assert out.splitlines() == [
        f"{config}: 2 jobs, all functions import and take their arguments",
        f"storage sqlite:///{database}: writable (schema version {version})",
    ]
    with sqlite3.connect(database) as conn:  # the write it made was rolled back
        assert conn.execute("SELECT count(*) FROM settings").fetchone() == (0,)


def test_check_fails_on_an_unwritable_sqlite_path(tmp_path: Path) -> None:
    config = make_project(tmp_path, GOOD)
    code, out, err = run("-c", str(config), "--storage", "sqlite:////proc/jobcontrol.db",
                         "check")
    assert code == 6, out + err
    assert err == ("Error: SQLite database /proc/jobcontrol.db: unable to open database "
                   "file\n")
    code, out, err = run("-c", str(config), "--storage", "sqlite:////proc/jobcontrol.db",
                         "check", "--no-storage")
    assert code == 0, err
    assert out.endswith("storage not checked (--no-storage)\n")


def test_check_fails_on_an_unreachable_postgresql(tmp_path: Path) -> None:
    config = make_project(tmp_path, GOOD)
    url = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    code, out, err = run("-c", str(config), "--storage", url, "check")
    assert code == 6, out + err
    assert err.startswith("Error: cannot connect to PostgreSQL database "), err
    assert "Connection refused" in err


def test_check_fails_on_a_read_only_postgresql(tmp_path: Path, pg_url: str) -> None:
    database = pg_url.rsplit("/", 1)[1]
    conn = psycopg2.connect(pg_url.rsplit("/", 1)[0] + "/postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    finally:
        conn.close()
    config = make_project(tmp_path, GOOD)
    code, out, err = run("-c", str(config), "--storage", pg_url, "check")
    assert code == 6, out + err
    assert err.startswith("Error: PostgreSQL database postgresql://"), err
    assert err.endswith(" cannot be written: cannot execute INSERT in a read-only "
                        "transaction\n"), err


@pytest.mark.parametrize("args", [["check", "--freshness", "--no-storage"]])
def test_freshness_needs_the_storage(tmp_path: Path, args: list[str]) -> None:
    config = make_project(tmp_path, GOOD)
    code, _, err = run("-c", str(config), *args)
    assert code == 2
    assert "--freshness reads the storage: it cannot go with --no-storage" in err
