"""Property: no request yields a 500. Every route of the app's url_map (so a new route is
covered without touching this file), with hypothesis-made path arguments, methods, query
strings, bodies and headers, through Flask's test client on a real SQLite storage holding a
couple of builds; with and without ``web: auth:`` (and a proxy in front). Deterministic and
bounded (seconds).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import IntegerConverter, Rule
from werkzeug.security import generate_password_hash

from jobcontrol import JobControl
from jobcontrol.models import BuildState
from jobcontrol.web import create_app
from tests.support import make_project
from tests.web_support import csrf_from

# hypothesis formats a failure's report with black, whose mypy_extensions import warns
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).parent.parent
TOKEN = "fuzz-token-0123456789"
PASSWORD = "fuzz password"
AUTH = f"""\
web:
  proxy: {{x_for: 1, x_proto: 1, x_host: 1, x_port: 1, x_prefix: 1}}
  auth:
    users: {{alice: "{generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")}"}}
    token: {TOKEN}
"""
JOBS = """\
jobs:
  - {id: fetch, function: jobfuncs.make, args: [fetch]}
  - {id: report, function: jobfuncs.make, args: [report], dependencies: [fetch]}
"""
#: examples a route gets, per app: bounded, so the whole test takes seconds
EXAMPLES = 16
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
PARAMS = ["next", "limit", "before", "after", "state", "level", "tag", "job", "then"]
FIELDS = ["user", "password", "csrf_token", "reason", "deps", "depending", "if_outdated"]
HEADERS = ["Authorization", "X-CSRFToken", "Cookie", "Content-Type", "Host", "Accept",
           "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
           "X-Forwarded-Prefix", "Referer", "Origin"]
HUGE = [2**63 - 1, 2**63, 2**64, 99999999999999999999999, 10**40]

#: what a header can carry: latin-1 without control characters
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    blacklist_characters="\x7f"), max_size=40)
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
numbers = st.one_of(st.integers(-5, 50), st.sampled_from(HUGE)).map(str)
values = st.one_of(any_text, numbers, st.sampled_from(
    ["fetch", "report", "failed", "error", "/", "//evil.example", "/\\evil.example",
     "/jobs\r\nSet-Cookie: x=1", "\x00", "https://evil.example/"]))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(FIELDS) | any_text, inner,
                                            max_size=3)),
    max_leaves=6)


def _placeholder(match: re.Match[str], rule: Rule, draw: Any) -> str:
    name = match.group(1)
    if isinstance(rule._converters[name], IntegerConverter):
        value = draw(numbers | st.sampled_from(["1", "2"]))
    else:
        value = draw(values)
    return quote(value, safe="")


def request_for(rule: Rule, draw: Any, secrets: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The path and the test-client keywords of one request aimed at ``rule``."""
    path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: _placeholder(m, rule, draw), rule.rule)
    query = draw(st.lists(st.tuples(st.sampled_from(PARAMS) | any_text, values), max_size=3))
    if query:
        path += "?" + urlencode(query)
    method = draw(st.sampled_from(sorted(rule.methods | {"GET", "POST", "PUT"})))
    headers = draw(st.dictionaries(st.sampled_from(HEADERS), header_text, max_size=3))
    if draw(st.booleans()):  # past the CSRF check or the login, to reach the view
        headers.update({"X-CSRFToken": secrets["csrf"],
                        "Authorization": f"Bearer {secrets['token']}"})
    body = draw(st.sampled_from(["none", "form", "json", "bytes"]))
    kwargs: dict[str, Any] = {"method": method, "headers": headers}
    if body == "form":
        kwargs["data"] = draw(st.dictionaries(st.sampled_from(FIELDS) | any_text, values,
                                              max_size=4))
    elif body == "json":
        kwargs["data"] = json.dumps(draw(json_values))
        kwargs["content_type"] = "application/json"
    elif body == "bytes":
        kwargs["data"] = draw(st.binary(max_size=40))
        kwargs["content_type"] = draw(header_text)
    return path, kwargs


def add_builds(jc: JobControl) -> None:
    for state in (BuildState.SUCCESS, BuildState.FAILED):
        build = jc.storage.claim_build("fetch", concurrency=9, definition={"function": "x"},
                                       definition_hash="h", dependency_builds={}, host="h",
                                       pid=1)
        jc.storage.finish_build(build.id, state)


@pytest.mark.parametrize("auth", [False, True], ids=["no-auth", "auth"])
def test_no_request_yields_a_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 auth: bool) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # a launch runs this checkout's jobcontrol
    config = make_project(tmp_path / "project", (AUTH if auth else "") + JOBS)
    jc = JobControl.from_config(config, f"sqlite:///{tmp_path / 'fuzz.db'}")
    add_builds(jc)
    app = create_app(jc)
    client = app.test_client()
    secrets = {"csrf": "", "token": TOKEN}  # with auth, the bearer token waives CSRF
    if not auth:
        secrets["csrf"] = client.get("/api/v1/csrf").get_json()["csrf_token"]
    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
    assert len(rules) > 15  # every page, API route and the static files

    for rule in rules:
        fuzz(client, rule, secrets)


def fuzz(client: Any, rule: Rule, secrets: dict[str, str]) -> None:
    """Requests aimed at ``rule``: each answered below 500."""

    @FUZZ
    @given(st.data())
    def check(data: st.DataObject) -> None:
        path, kwargs = request_for(rule, data.draw, secrets)
        response = client.open(path, **kwargs)
        assert response.status_code < 500, (rule.rule, path, kwargs,
                                            response.get_data(as_text=True)[:300])

    check()


def test_the_inputs_that_gave_500s(tmp_path: Path) -> None:
    """The issue's cases: a ``next`` with CR/LF, and ids past what SQLite stores."""
    config = make_project(tmp_path / "project", AUTH + JOBS)
    jc = JobControl.from_config(config, f"sqlite:///{tmp_path / 'fuzz.db'}")
    add_builds(jc)
    app = create_app(jc)
    for target in ("/jobs\r\nSet-Cookie: x=1", "/\\evil.example", "//evil.example"):
        client = app.test_client()
        token = csrf_from(client.get("/login").get_data(as_text=True))
        response = client.post("/login?" + urlencode({"next": target}), data={
            "csrf_token": token, "user": "alice", "password": PASSWORD})
        assert response.status_code == 302 and response.headers["Location"] == "/"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/api/v1/builds/99999999999999999999999", "/builds/9223372036854775808",
                 "/api/v1/builds/99999999999999999999999/logs"):
        assert client.get(path, headers=bearer).status_code == 404, path
    for path in ("/api/v1/builds?before=99999999999999999999999",
                 "/api/v1/builds/1/logs?after=99999999999999999999999",
                 "/api/v1/builds/1/logs?level=99999999999999999999999",
                 "/api/v1/builds/1/logs?level=%C2%B2", "/api/v1/builds/1/logs?limit=%D9%A3"):
        assert client.get(path, headers=bearer).status_code == 400, path
