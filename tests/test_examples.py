"""The example pipeline of the README's quick start, run as a user would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support import Cli

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture
def example(tmp_path: Path) -> Cli:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("output", "*.db*"))
    import sys

    sys.modules.pop("pipeline", None)
    return Cli(folder / "jobs.yaml")


def test_example_pipeline_builds_and_tracks(example: Cli) -> None:
    out = example("build", "report", "--deps").output
    assert "build #3 report: success" in out
    folder = example.config.parent
    assert (folder / "jobcontrol.db").exists()  # the config's storage:, beside it
    report = (folder / "output" / "report.txt").read_text()
    assert "ACME" in report and "GLOBEX" in report
    status = {r["job"]: r for r in json.loads(example("status", "--format", "json").output)}
    assert [status[j]["outdated"] for j in ("fetch_prices", "summarize", "report")] == [
        False, False, False]
    assert status["archive"]["outdated_reasons"] == ["never built successfully"]
    summary = json.loads(example("show", "2", "--format", "json").output)
    assert set(summary["retval"]) == {"ACME", "GLOBEX", "INITECH"}
    assert summary["progress"][0]["group"] == ["symbols"]

    assert json.loads(example("build", "archive", "--format", "json").output)[0]["state"] \
        == "success"
    again = json.loads(example("build", "archive", "--format", "json").output)[0]
    assert again["state"] == "skipped" and again["reason"].startswith("already archived")

    compressed = json.loads(example("build", "compress_report", "--format", "json").output)[0]
    assert compressed["state"] == "success"  # a shell job
    assert (folder / "output" / "report.txt.gz").stat().st_size > 0

    example("delete", "3")
    assert not (folder / "output" / "report.txt").exists()  # its cleanup_function ran
    assert "never built successfully" in example("status", "report", "--why").output
