"""Alias bombs: nested YAML aliases ("billion laughs") are refused at the alias, fast and in
little memory, by a real ``jobcontrol check``; configs sharing defaults through aliases load."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from jobcontrol.config import load_config
from jobcontrol.config.loading import load_yaml
from jobcontrol.config.yaml_loader import MAX_ALIAS_VALUES, loader_class
from jobcontrol.errors import ConfigError
from tests.processes import ROOT
from tests.support import make_project


def laughs(levels: int = 9, width: int = 10) -> str:
    """A job whose kwargs hold ``levels`` lists, each of ``width`` aliases of the one before:
    width ** levels values once expanded, in under a kilobyte."""
    lines = ["jobs:", "  - id: lol", "    function: jobfuncs.noop", "    kwargs:",
             f"      l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"      l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


#: run a command as the wrapper's only child; print its exit code, output and the
#: resources it took (RUSAGE_CHILDREN: CPU seconds, peak RSS in KiB)
WRAPPER = """\
import json, resource, subprocess, sys
try:
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=20)
    code, err = done.returncode, done.stderr
except subprocess.TimeoutExpired:
    code, err = None, "timed out"
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "stderr": err, "cpu": usage.ru_utime + usage.ru_stime,
                  "rss_kib": usage.ru_maxrss}))
"""


def test_billion_laughs_is_refused_at_the_alias_fast_in_little_memory(tmp_path: Path) -> None:
    config = make_project(tmp_path, laughs())
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, sys.executable, "-m", "jobcontrol", "-c", str(config),
         "--storage", "memory://", "check"],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT)})
    result = json.loads(done.stdout)
    assert result["code"] == 2, result
    # the alias that crosses the limit: level 5 (each level-4 list stands for 111,111 values)
    line = 4 + 6
    assert f"jobs.yaml:{line}:" in result["stderr"], result
    assert "aliases stand for more than 250,000 values" in result["stderr"]
    assert result["cpu"] < 1.0, result  # the interpreter and imports included
    assert result["rss_kib"] < 100_000, result


@pytest.fixture(params=["libyaml", "pure-python"])
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test with libyaml's loader (when installed) and with PyYAML's own."""
    if request.param == "pure-python":
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    loader_class.cache_clear()
    yield request.param
    loader_class.cache_clear()


def test_the_limit_counts_values_expanded(yaml_loader: str) -> None:
    # a list of 999 values stands for 1,000 (itself too); the 251st alias is one too many
    items = ", ".join(["x"] * 999)
    allowed = MAX_ALIAS_VALUES // 1000
    text = f"a: &a [{items}]\nb:\n" + "  - *a\n" * allowed
    assert len(load_yaml(text, "ok.yaml").data["b"]) == allowed
    with pytest.raises(ConfigError, match=r"aliases stand for more than 250,000") as info:
        load_yaml(text + "  - *a\n", "bomb.yaml")
    assert (info.value.line, info.value.column) == (allowed + 3, 5)


def test_defaults_shared_through_aliases_still_load(tmp_path: Path, yaml_loader: str) -> None:
    config = make_project(tmp_path, """\
        jobs:
          - id: one
            <<: &defaults {function: jobfuncs.noop, timeout: 1h, retries: {count: 2}}
            kwargs: {tag: &paths [/srv/in, /srv/out]}
          - <<: *defaults
            id: two
            dependencies: [one]
            kwargs: {tag: *paths}
        """)
    loaded = load_config(config)
    assert loaded.jobs["two"].kwargs == {"tag": ["/srv/in", "/srv/out"]}
    assert loaded.jobs["one"].timeout == 3600
