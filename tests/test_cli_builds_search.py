"""``jobcontrol builds`` with the Builds page's filters: ``--tag``, ``--since``, ``--until``,
``--search``, on every backend."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from jobcontrol.models import BuildState
from jobcontrol.storage import Storage
from tests.support import Cli, make_project

S = BuildState
CONFIG = """\
jobs:
  - {id: extract, function: jobfuncs.make, args: [x], tags: [input]}
  - {id: report, function: jobfuncs.make, args: [r], tags: [output]}
"""


@pytest.fixture
def cli(tmp_path: Path, storage: Storage) -> Cli:
    return Cli(make_project(tmp_path, CONFIG), storage)


def ids(cli: Cli, *args: str) -> list[int]:
    return [row["id"] for row in json.loads(cli("builds", *args, "--format", "json").output)]


def test_builds_filters_by_tag_time_and_text(cli: Cli, storage: Storage) -> None:
    made = []
    for job, state, reason in [("extract", S.SUCCESS, None), ("report", S.FAILED, "disk full"),
                               ("extract", S.FAILED, "Disk quota")]:
        build = storage.claim_build(job, concurrency=9, definition={}, definition_hash="h",
                                    dependency_builds={}, host="h", pid=1)
        made.append(storage.finish_build(build.id, state, reason=reason))
    assert ids(cli, "--tag", "input") == [made[2].id, made[0].id]
    assert ids(cli, "--tag", "input", "--state", "failed") == [made[2].id]
    assert ids(cli, "report", "--tag", "input") == []
    assert ids(cli, "--search", "disk") == [made[2].id, made[1].id]
    assert ids(cli, "--search", "repo") == [made[1].id]
    assert ids(cli, "--since", "1h") == [b.id for b in reversed(made)]
    assert ids(cli, "--since", "1h", "--limit", "1") == [made[2].id]
    created = made[1].created
    assert created is not None
    assert ids(cli, "--until", created.isoformat()) == [made[0].id]
    assert ids(cli, "--since", (created + timedelta(hours=1)).isoformat()) == []
    result = cli("builds", "--since", "yesterday", code=2)
    assert "--since" in result.output and "must be like 24h" in result.output
