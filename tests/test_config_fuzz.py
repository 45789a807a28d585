"""Property: whatever text it is given, the config loader returns a Config or raises a
ConfigError (one line, naming the file), never any other exception.

Two sources of text: random structures dumped by ``yaml.safe_dump`` (shaped like configs,
with config keys among random ones), and a valid config using every feature, mutated
(lines deleted, duplicated, swapped; characters and tags inserted; truncated). Both run with
libyaml's loader and with PyYAML's own. Deterministic (derandomized) and quick.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobcontrol.config import Config, parse_config
from jobcontrol.config.sections import RUNNER_KEYS
from jobcontrol.config.validation import DEFAULT_KEYS, JOB_KEYS, TOP_KEYS
from jobcontrol.config.values import RETENTION_KEYS, RETRY_KEYS
from jobcontrol.config.yaml_loader import loader_class
from jobcontrol.errors import ConfigError

# hypothesis formats a failure's report with black, whose mypy_extensions import warns:
# under filterwarnings=error that would hide the failing example behind an INTERNALERROR
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NAME = "fuzz/jobs.yaml"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID = """\
storage: !env JC_FUZZ_URL
defaults:
  timeout: 1h
  tags: [nightly]
  retries: {count: 2, delay: 10s, backoff: 2, max_delay: 1m}
  retention: {keep_last: 10, keep_for: 30d, logs: {DEBUG: 1d, info: 7d}}
runner: {heartbeat: 5s, heartbeat_timeout: 60s, kill_grace: 5s}
secrets: [!env JC_FUZZ_SECRET, literal-secret]
jobs:
  - &base
    id: fetch
    title: Fetch
    function: pipeline.fetch
    args: [EUR, 3, 2024-01-02, !!set {a, b}]
    kwargs: {days: 7, password: hunter2, nested: {token: [x, y]}}
    timeout: 10m
    concurrency: 2
    isolation: process
    result: json
  - <<: *base
    id: report
    function: pipeline:make_report
    dependencies: [fetch]
    kwargs:
      prices: !retval fetch
      options: {deep: [!retval fetch, 1.5, null, true]}
    cleanup_function: pipeline.cleanup
    retries: 3
    retention: null
"""

TAGS = [
    "!retval ",
    "!retval fetch ",
    "!env ",
    "!env JC_FUZZ_SECRET ",
    "!env JC_FUZZ_UNSET ",
    "!!python/object ",
    "!!python/object/apply:os.system ",
    "!!python/name:os.system ",
    "!!int ",
    "!!float ",
    "!!bool ",
    "!!timestamp ",
    "!!binary ",
    "!!map ",
    "!!seq ",
    "!!set ",
    "!!omap ",
    "!!pairs ",
    "!!str ",
    "!!null ",
    "!custom ",
    "&a ",
    "*a ",
    "*base ",
    "<<: ",
    "? ",
    "- ",
    "{{ ",
    "{% ",
]
# characters that matter to YAML and Jinja, and a few that do not
SPECIALS = ":{}[]-#&*!|>'\"%@`,?\t\n \\{{}}0123456789.aez\x00\x07\u00e9\u2028\U0001f600"
KEYS = [*TOP_KEYS, *JOB_KEYS, *DEFAULT_KEYS, *RETRY_KEYS, *RETENTION_KEYS, *RUNNER_KEYS]


@pytest.fixture(scope="module", autouse=True)
def environment() -> Iterator[None]:
    """The variables the configs read with !env (module-scoped, as hypothesis wants)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JC_FUZZ_URL", "sqlite:///fuzz.db")
        patch.setenv("JC_FUZZ_SECRET", "s3cr3t-value")
        patch.delenv("JC_FUZZ_UNSET", raising=False)
        yield


@pytest.fixture(scope="module", params=["libyaml", "pure-python"])
def yaml_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """The loader to fuzz: libyaml's, then PyYAML's own."""
    saved = getattr(yaml, "CSafeLoader", None)
    if request.param == "pure-python" and saved is not None:
        del yaml.CSafeLoader
    loader_class.cache_clear()
    yield request.param
    if saved is not None:
        yaml.CSafeLoader = saved
    loader_class.cache_clear()


def check(text: str) -> Config | None:
    """The property: a Config that can be snapshotted and hashed, or a clean ConfigError."""
    try:
        config = parse_config(text, NAME)
    except ConfigError as error:
        assert error.file == NAME, str(error)
        assert "\n" not in str(error), str(error)
        return None
    for job in config.jobs.values():
        json.dumps(job.snapshot())
        assert len(job.definition_hash) == 64
        repr(job)
    return config


# --------------------------------------------------------------------------- structures

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["30s", "10m", "1h30m", "0", "-1", "m.f", "pkg.mod:func", "DEBUG", "x"]),
    st.sampled_from(KEYS),
    st.dates(),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=12,
)
job_shaped = st.dictionaries(st.sampled_from(JOB_KEYS), values, max_size=8)
config_shaped = st.fixed_dictionaries(
    {},
    optional={
        "storage": values,
        "defaults": st.one_of(st.dictionaries(st.sampled_from(DEFAULT_KEYS), values), values),
        "runner": st.one_of(st.dictionaries(st.sampled_from(RUNNER_KEYS), values), values),
        "secrets": st.one_of(st.lists(st.one_of(st.text(max_size=8), scalars)), values),
        "jobs": st.one_of(st.lists(job_shaped, max_size=4), values),
    },
)


@settings(FUZZ, max_examples=120)  # generating structures is the slow part: one loader
@given(document=st.one_of(config_shaped, values))
def test_random_documents(document: Any) -> None:
    check(yaml.safe_dump(document, allow_unicode=True))


# --------------------------------------------------------------------------- mutations


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """VALID with one to four random edits."""
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        lines = text.splitlines(keepends=True) or [""]
        kind = draw(
            st.sampled_from(["delete", "duplicate", "swap", "insert", "tag", "truncate", "indent"])
        )
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
        text = "".join(lines)
        if kind in ("insert", "tag", "truncate"):
            at = draw(st.integers(0, len(text)))
            if kind == "truncate":
                text = text[:at]
            else:
                piece = (
                    draw(st.text(alphabet=SPECIALS, min_size=1, max_size=4))
                    if kind == "insert"
                    else draw(st.sampled_from(TAGS))
                )
                text = text[:at] + piece + text[at:]
    return text


def test_the_valid_config_is_valid(yaml_mode: str) -> None:
    config = check(VALID)
    assert config is not None
    assert list(config.jobs) == ["fetch", "report"]
    assert "s3cr3t-value" in config.secrets and "hunter2" in config.secrets


@settings(FUZZ, max_examples=200)
@given(text=mutated())
def test_mutated_configs(yaml_mode: str, text: str) -> None:
    check(text)


@FUZZ
@given(text=st.text(alphabet=SPECIALS, max_size=60))
def test_random_text(yaml_mode: str, text: str) -> None:
    check(text)


@pytest.mark.parametrize(
    "text",
    [
        "jobs: [{id: a, function: m.f, args: " + "[" * 1_000 + "]" * 1_000 + "}]\n",
        "jobs:\n" + "- " * 5_000 + "x\n",
        "a: &a [*a]\njobs: []\n",
        "jobs: [{id: a, function: m.f, args: &x !!omap [{k: *x}]}]\n",
        "jobs: &j {<<: *j}\n",
        "jobs: []\nx: 2024-02-30\n",
        "jobs: []\nx: \ud800\n",
        "jobs: [{id: a, function: m.f, timeout: 1" + "0" * 5000 + "}]\n",
        "jobs: [{id: a, function: m.f, dependencies: 'b\n\n c'}]\n",
        "{{ 1 }",
        "jobs: [{id: a, function: m.f, kwargs: {x: !env ''}}]\n",
        "jobs: [{id: a, function: m.f, kwargs: {x: !env \"A\\0B\"}}]\n",
    ],
    ids=lambda text: repr(text[:30]),
)
def test_known_crashers(yaml_mode: str, text: str) -> None:
    check(text)
