"""The fast path of load_yaml (libyaml's events, jobcontrol.config.events) against the slow
one (PyYAML's composer and constructors): for any text, the same data, types, marks and
``!env`` values, or the same ConfigError; and each thing the fast path leaves to the slow one
really is left to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from jobcontrol.config import RetvalRef, events, parse_config
from jobcontrol.config.loading import load_yaml
from jobcontrol.config.validation import JOB_KEYS
from jobcontrol.config.yaml_loader import Document, MarkedDict, MarkedList, loader_class
from jobcontrol.errors import ConfigError
from tests.test_config_fuzz import FUZZ, SPECIALS, VALID, config_shaped, mutated, values

# hypothesis formats a failure's report with black, whose mypy_extensions import warns
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False), reason="needs libyaml"),
]

NAME = "events/jobs.yaml"
ORDINARY = """\
defaults: {isolation: inline, timeout: 10m}
jobs:
  - id: fetch
    function: pipeline.fetch
    title: "Fetch: prices"
    kwargs: {n: 0, ratio: 1.5, when: 2024-01-02, flag: yes, none: ~, hex: 0x1F}
    tags: [a, 'b', "c"]
  - id: report
    function: pipeline:report
    dependencies: [fetch]
    args: [!retval fetch, -3, .inf, .nan, 1_000, 0o7, 12:30, "2024-01-02", 010, 0, 7]
    kwargs:
      password: !env JC_EVENTS_SECRET
      empty:
      text: |
        two
        lines
      folded: >-
        one
        line
"""


@pytest.fixture(scope="module", autouse=True)
def environment() -> Iterator[None]:
    """The variables the configs read with !env, libyaml's loader picked afresh."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JC_EVENTS_SECRET", "s3cr3t-value")
        patch.setenv("JC_FUZZ_URL", "sqlite:///fuzz.db")
        patch.setenv("JC_FUZZ_SECRET", "s3cr3t-value")
        patch.delenv("JC_FUZZ_UNSET", raising=False)
        patch.delenv("JC_EVENTS_UNSET", raising=False)
        loader_class.cache_clear()
        yield
    loader_class.cache_clear()


def slow(text: str) -> Document | ConfigError:
    """load_yaml with the fast path turned off."""
    saved = events.ENABLED
    events.ENABLED = False
    try:
        return outcome(text)
    finally:
        events.ENABLED = saved


def outcome(text: str) -> Document | ConfigError:
    try:
        return load_yaml(text, NAME)
    except ConfigError as error:
        return error


def fast(text: str) -> tuple[Document | ConfigError, str]:
    """load_yaml as it runs, and which path served it ("events" or "fallback")."""
    before = dict(events.taken)
    result = outcome(text)
    paths = [path for path, count in events.taken.items() if count != before[path]]
    assert len(paths) == 1, paths
    return result, paths[0]


def assert_same(a: Any, b: Any, where: str = "root", seen: set[int] | None = None) -> None:
    """Equal data of equal types, with equal marks on every MarkedDict and MarkedList."""
    assert type(a) is type(b), (where, a, b)
    seen = set() if seen is None else seen
    if isinstance(a, (MarkedDict, MarkedList)):
        if id(a) in seen:  # a recursive structure (an alias of an enclosing node)
            return
        seen.add(id(a))
    if isinstance(a, MarkedDict):
        assert list(a) == list(b), where
        assert [type(k) for k in a] == [type(k) for k in b], where
        assert (a.start, a.key_marks, a.value_marks) == (b.start, b.key_marks, b.value_marks), (
            where
        )
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]", seen)
    elif isinstance(a, MarkedList):
        assert (a.start, a.item_marks, len(a)) == (b.start, b.item_marks, len(b)), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{index}]", seen)
    elif isinstance(a, RetvalRef):
        assert (a.job_id, a.location) == (b.job_id, b.location), where
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, (where, a, b)


def assert_equivalent(text: str) -> str:
    """The fast path's outcome is the slow path's; returns the path taken."""
    expected = slow(text)
    got, path = fast(text)
    if isinstance(expected, ConfigError):
        assert isinstance(got, ConfigError), (text, got)
        assert (got.message, got.file, got.line, got.column) == (
            expected.message, expected.file, expected.line, expected.column)
        assert path == "fallback"
    else:
        assert isinstance(got, Document), (text, got)
        assert got.root == expected.root
        assert got.env_values == expected.env_values
        assert got.retvals == expected.retvals
        assert_same(got.data, expected.data)
    return path


# --------------------------------------------------------------------------- properties


@settings(FUZZ, max_examples=150)
@given(document=st.one_of(config_shaped, values))
def test_dumped_documents_load_alike_and_fast(document: Any) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    # safe_dump writes no anchors or duplicates here, and a tag (`!!timestamp` on a date
    # broken over lines) only now and then: the rest is all the fast path's
    assert assert_equivalent(text) == "events" or "!!" in text


@settings(FUZZ, max_examples=150)
@given(document=st.one_of(config_shaped, values))
def test_flow_dumped_documents_load_alike(document: Any) -> None:
    text = yaml.safe_dump(document, allow_unicode=True, default_flow_style=True, width=30)
    assert assert_equivalent(text) == "events" or "!!" in text


@settings(FUZZ, max_examples=300)
@given(text=mutated())
def test_mutated_configs_load_alike(text: str) -> None:
    assert_equivalent(text)


@settings(FUZZ, max_examples=300)
@given(text=st.text(alphabet=SPECIALS, max_size=60))
def test_random_text_loads_alike(text: str) -> None:
    assert_equivalent(text)


def parsed(text: str, enabled: bool) -> Any:
    """parse_config's Config (with every job's locations) or error, either path."""
    saved = events.ENABLED
    events.ENABLED = enabled
    try:
        config = parse_config(text, NAME)
    except ConfigError as error:
        return str(error)
    finally:
        events.ENABLED = saved
    places = [(job.location, [job.location_of(key) for key in JOB_KEYS])
              for job in config.jobs.values()]
    return config, places


@settings(FUZZ, max_examples=200)
@given(text=st.one_of(mutated(), config_shaped.map(yaml.safe_dump)))
def test_configs_parse_alike(text: str) -> None:
    assert parsed(text, True) == parsed(text, False)


# --------------------------------------------------------------------------- the fast path


def test_an_ordinary_config_takes_the_fast_path() -> None:
    assert assert_equivalent(ORDINARY) == "events"
    document, _ = fast(ORDINARY)
    assert isinstance(document, Document)
    assert document.env_values == {"s3cr3t-value"}
    args = document.data["jobs"][1]["args"]
    assert isinstance(args[0], RetvalRef) and args[0].location is not None
    assert (args[0].location.line, args[0].location.column) == (11, 12)
    assert args[1:3] == [-3, math.inf] and args[4:] == [1000, "0o7", 750, "2024-01-02", 8, 0, 7]


@pytest.mark.parametrize("enabled", [True, False], ids=["events", "nodes"])
def test_a_document_tells_whether_it_holds_a_retval(enabled: bool) -> None:
    saved = events.ENABLED
    events.ENABLED = enabled
    try:
        assert load_yaml("a: [1, {b: !retval x}]\n", NAME).retvals
        assert load_yaml("a: &r !retval x\nb: *r\n", NAME).retvals
        assert not load_yaml("a: [1, {b: '!retval x'}]\n", NAME).retvals
    finally:
        events.ENABLED = saved


def test_parse_config_takes_the_fast_path() -> None:
    before = events.taken["events"]
    config = parse_config(ORDINARY, NAME)
    assert events.taken["events"] == before + 1
    assert "s3cr3t-value" in config.secrets
    assert config.jobs["report"].location_of("args").line == 11


def test_the_repositorys_configs_take_the_fast_path(tmp_path: Path) -> None:
    from benchmarks.jc_cases import noop_jobs, write_config

    example = (Path(__file__).parent.parent / "examples/jobs.yaml").read_text(encoding="utf-8")
    benchmark = write_config(tmp_path, noop_jobs(100), "inline").read_text(encoding="utf-8")
    for text in (example, benchmark):
        assert assert_equivalent(text) == "events"


@pytest.mark.parametrize("text", [
    "", "# nothing\n", "---\n", "--- x\n...\n", "x", "[]", "{}", "- a\n-\n- c: d\n",
    "'quoted': 1\n\"1\": x\n1: y\n~: z\n2024-01-02: d\n",
    "a: !env JC_EVENTS_SECRET\nb: !env  JC_EVENTS_SECRET  \nc: !retval x\n",
    "%YAML 1.1\n---\na: 1\n",
])
def test_fast_path_cases(text: str) -> None:
    assert assert_equivalent(text) == "events"


def test_deepest_allowed_nesting_takes_the_fast_path() -> None:
    from jobcontrol.config.yaml_loader import MAX_DEPTH

    assert assert_equivalent("[" * MAX_DEPTH + "]" * MAX_DEPTH) == "events"


def test_nan_is_shared_as_before() -> None:
    # PyYAML makes every .nan one object (a class attribute): scalars cached by text agree
    identical = []
    for document in (slow("[.nan, .NaN]\n"), fast("[.nan, .NaN]\n")[0]):
        assert isinstance(document, Document)
        first, second = document.data
        identical.append(first is second)
    assert identical == [True, True]


def test_the_loaded_env_value_is_read_at_load_time(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a: !env JC_EVENTS_SECRET\n"
    monkeypatch.setenv("JC_EVENTS_SECRET", "first")
    assert load_yaml(text, NAME).data == {"a": "first"}
    monkeypatch.setenv("JC_EVENTS_SECRET", "second")
    document = load_yaml(text, NAME)
    assert document.data == {"a": "second"} and document.env_values == {"second"}


# --------------------------------------------------------------------------- fallbacks


@pytest.mark.parametrize("text", [
    pytest.param("a: &x 1\nb: 2\n", id="anchor"),
    pytest.param("a: &x [1]\nb: *x\n", id="alias"),
    pytest.param("a: &x [*x]\n", id="recursive alias"),
    pytest.param("base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n", id="merge"),
    pytest.param("a: {<<: {x: 1}, x: 2}\n", id="merge without alias"),
    pytest.param("a: !!int 3\n", id="!!int"),
    pytest.param("a: !!int abc\n", id="bad !!int"),
    pytest.param("a: !!str 3\n", id="!!str"),
    pytest.param("a: !!set {x, y}\n", id="!!set"),
    pytest.param("a: !!binary aGVsbG8=\n", id="!!binary"),
    pytest.param("a: !!timestamp 2024-01-02\n", id="!!timestamp"),
    pytest.param("a: !!map {x: 1}\n", id="!!map"),
    pytest.param("a: !!python/object/apply:os.system [ls]\n", id="python tag"),
    pytest.param("a: ! x\n", id="non-specific tag"),
    pytest.param("a: !custom x\n", id="custom tag"),
    pytest.param("a: !env [x]\n", id="!env on a sequence"),
    pytest.param("? [1, 2]\n: x\n", id="sequence key"),
    pytest.param("{a: 1}: x\n", id="mapping key"),
    pytest.param("!env JC_EVENTS_SECRET : x\n", id="tagged key"),
    pytest.param("a: 1\nb: 2\na: 3\n", id="duplicate key"),
    pytest.param("1: a\n1.0: b\n", id="duplicate by equality"),
    pytest.param("a: =\n", id="!!value"),
    pytest.param("a: <<\n", id="merge as value"),
    pytest.param("a: 2024-13-45\n", id="bad date"),
    pytest.param("a: 1" + "0" * 5_000 + "\n", id="int too long to convert"),
    pytest.param("a: !env JC_EVENTS_UNSET\n", id="unset !env"),
    pytest.param("a: !env ''\n", id="empty !env"),
    pytest.param("a: !retval\n", id="empty !retval"),
    pytest.param("a:\n\tb: 1\n", id="tab"),
    pytest.param("a: b\x07\n", id="control character"),
    pytest.param("a: \ud800\n", id="lone surrogate"),
    pytest.param("a: [1\n", id="unclosed"),
    pytest.param("a: 1\n---\nb: 2\n", id="two documents"),
    pytest.param("[" * 201 + "]" * 201, id="deep flow"),
    pytest.param("- " * 300 + "x\n", id="deep block"),
])
def test_fallbacks(text: str) -> None:
    assert assert_equivalent(text) == "fallback"


@pytest.mark.parametrize(("text", "message", "line", "column"), [
    pytest.param("jobs:\n  - id: a\n    function: m.f\n    id: b\n",
                 "duplicate key 'id' (first at line 2)", 4, 5, id="duplicate key"),
    pytest.param("a: 1\nb: !env JC_EVENTS_UNSET\n",
                 "environment variable JC_EVENTS_UNSET is not set", 2, 4, id="unset !env"),
])
def test_errors_keep_their_message_and_place(text: str, message: str, line: int,
                                             column: int) -> None:
    error, path = fast(text)
    assert path == "fallback"
    assert isinstance(error, ConfigError)
    assert (error.message, error.line, error.column) == (message, line, column)


def test_non_string_keys_load_as_before() -> None:
    # (1 and true would be one key twice)
    assert assert_equivalent("2: a\nnull: b\ntrue: c\n1.5: d\n2024-01-02: e\n") == "events"
    document, _ = fast("2: a\nnull: b\ntrue: c\n")
    assert isinstance(document, Document)
    assert list(document.data) == [2, None, True]


def test_deep_nesting_is_a_config_error() -> None:
    error, path = fast("jobs:\n" + "- " * 5_000 + "x\n")
    assert path == "fallback"
    assert isinstance(error, ConfigError) and "nested more than 200" in error.message


def test_tab_message() -> None:
    error, path = fast("a:\n\tb: 1\n")
    assert path == "fallback"
    assert isinstance(error, ConfigError) and "indented with tabs" in error.message


def test_pure_python_loader_takes_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(yaml, "CSafeLoader")
    loader_class.cache_clear()
    try:
        before = dict(events.taken)
        document = load_yaml(ORDINARY, NAME)
        assert events.taken == before  # neither path of this module
    finally:
        monkeypatch.undo()
        loader_class.cache_clear()
    assert_same(document.data, load_yaml(ORDINARY, NAME).data)


def test_the_valid_fuzz_config_falls_back_alike() -> None:
    # anchors and a merge key: the slow path's
    assert assert_equivalent(VALID) == "fallback"
