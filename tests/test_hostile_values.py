"""Values that are hard to store: huge, unprintable, invalid UTF-8. The state stays right."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobcontrol import BuildState, JobControl
from jobcontrol.serialize import MAX_MESSAGE, MAX_RESULT, MAX_TRACEBACK
from jobcontrol.storage import Storage
from tests.support import make_project

CONFIG = """\
jobs:
  - {id: huge_return, function: jobfuncs.hostile, args: [huge_return]}
  - {id: bad_str, function: jobfuncs.hostile, args: [bad_str]}
  - {id: surrogates, function: jobfuncs.hostile, args: [surrogates]}
  - {id: huge_traceback, function: jobfuncs.hostile, args: [huge_traceback]}
  - {id: huge_log, function: jobfuncs.hostile, args: [huge_log]}
"""


@pytest.fixture
def jc(tmp_path: Path, storage: Storage) -> JobControl:
    return JobControl.from_config(make_project(tmp_path, CONFIG), storage=storage)


def test_huge_return_value_is_kept_as_a_cut_repr(jc: JobControl) -> None:
    [build] = jc.build("huge_return")
    assert build.state is BuildState.SUCCESS
    assert build.result.kind == "repr"
    assert build.result.data.startswith("[50000002 characters of JSON, too large to store]")
    assert len(build.result.data) < MAX_RESULT


def test_exception_whose_str_raises(jc: JobControl) -> None:
    [build] = jc.build("bad_str")
    assert build.state is BuildState.FAILED
    assert build.exception.type == "jobfuncs.BadStr"
    assert "str() of BadStr failed" in build.exception.message
    assert "in hostile" in build.exception.traceback


def test_invalid_utf8_is_stored_escaped(jc: JobControl) -> None:
    [build] = jc.build("surrogates")
    assert build.state is BuildState.SUCCESS
    assert build.retval["text"] == "lone \udcff surrogate"  # JSON escapes round-trip
    messages = [r.message for r in jc.logs(build.id)]
    assert "bad text \\udcff here" in messages
    assert any("printed" in m for m in messages)


def test_huge_traceback_and_log_line_are_cut(jc: JobControl) -> None:
    [build] = jc.build("huge_traceback")
    assert build.state is BuildState.FAILED
    assert len(build.exception.message) <= MAX_MESSAGE + 100
    assert len(build.exception.traceback) <= MAX_TRACEBACK + 100
    assert "characters cut" in build.exception.traceback
    [build] = jc.build("huge_log")
    assert build.state is BuildState.SUCCESS
    [record] = jc.logs(build.id)
    assert len(record.message) <= MAX_MESSAGE + 100 and "characters cut" in record.message
