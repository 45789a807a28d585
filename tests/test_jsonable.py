"""serialize.to_jsonable, the one walk from Python values to plain JSON: its output form (the
CLI's and the web's JSON) and its definition form (what a job's hash and snapshot hold, which
must never change: a change would make every job outdated), side by side on the same values."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

from jobcontrol.config import parse_config
from jobcontrol.secrets import Masker
from jobcontrol.serialize import Opaque, to_jsonable

ODD = """\
secrets: [hunter2hunter2]
jobs:
  - {id: b, function: m.g}
  - id: a
    function: m.f
    dependencies: [b]
    args: [.nan, -.inf, !!binary aGVsbG8=, 2024-01-02, 2024-01-02 10:11:12,
           !!set {y, 3, x}, !!omap [{k: 1}], "at hunter2hunter2"]
    kwargs: {when: 2024-01-02T10:11:12+02:00, password: pw, r: [!retval b], "7": {8: 9}}
"""
#: the definition form of ODD's args and kwargs, as every release stored and hashed it
ARGS = ('[NaN, -Infinity, "b\'hello\'", "2024-01-02", "2024-01-02 10:11:12", ["x", "y", 3], '
        '[["k", 1]], "at ***"]')
KWARGS = ('{"when": "2024-01-02 10:11:12+02:00", "password": "***", "r": [{"!retval": "b"}], '
          '"7": {"8": 9}}')


def test_a_definition_keeps_its_form_and_hash(tmp_path: Path) -> None:
    job = parse_config(ODD, tmp_path / "jobs.yaml").job("a")
    snapshot = job.stored_snapshot
    assert json.dumps(snapshot["args"]) == ARGS
    assert json.dumps(snapshot["kwargs"]) == KWARGS
    payload = {"function": "m.f", "args": json.loads(ARGS), "kwargs": json.loads(KWARGS)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    assert job.definition_hash == hashlib.sha256(text.encode()).hexdigest()


def test_the_output_form_of_the_same_values() -> None:
    when = dt.datetime(2024, 1, 2, 10, 11, 12, tzinfo=dt.timezone.utc)
    value = [math.nan, -math.inf, b"hello", dt.date(2024, 1, 2), when, dt.time(1, 2),
             dt.timedelta(minutes=2), (1, {2: Opaque("repr", "<X>")}), {"password": "pw"}]
    assert to_jsonable(value) == [
        "nan", "-inf", "aGVsbG8=", "2024-01-02", "2024-01-02T10:11:12+00:00", "01:02:00",
        120.0, [1, {"2": "<X>"}], {"password": "pw"},
    ]
    masked = to_jsonable(value, Masker(["hello"]), definition=True)
    assert masked[2:5] == ["b'***'", "2024-01-02", "2024-01-02 10:11:12+00:00"]
    assert masked[7:] == [[1, {"2": "<X>"}], {"password": "***"}]
