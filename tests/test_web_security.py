"""The web UI under attack: DNS rebinding against a real ``jobcontrol web``, sessions that
must end with their credential, login timing and throttling, cookies behind a proxy.

Attacks on the network (a foreign ``Host:``) go to a real server with a real HTTP client;
what is the app's own logic (sessions, logins) goes through Flask's test client, on SQLite
and PostgreSQL where the storage keeps the state.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jobcontrol import JobControl
from jobcontrol.storage import open_storage
from jobcontrol.web import create_app
from tests.support import make_project
from tests.test_processes import jobcontrol

JOBS = """\
jobs:
  - {id: fetch, function: jobfuncs.make, args: [fetch]}
"""
EVIL = "attacker.example"


@contextmanager
def web_server(config: Path) -> Iterator[int]:
    """``jobcontrol web`` on a free port (its SQLite file beside the config): the port."""
    process = jobcontrol("-c", str(config), "web", "--port", "0")
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # the "serving" line, once it listens
        match = re.search(r"serving http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + process.stderr.read()
        yield int(match.group(1))
    finally:
        process.terminate()
        process.communicate(timeout=20)


def send(port: int, method: str, path: str, host: str, headers: dict[str, str] | None = None,
         body: str | None = None) -> tuple[int, http.client.HTTPMessage, str]:
    """One raw HTTP request to 127.0.0.1:``port`` carrying ``Host: host``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        connection.close()


# -- 1. DNS rebinding ------------------------------------------------------------------------


def test_dns_rebinding_a_foreign_host_name_is_refused(tmp_path: Path) -> None:
    """A page on attacker.example, its name resolving to 127.0.0.1, asks for a CSRF token
    and launches a build, as a browser would send it; the loopback names and the names the
    config allows are served."""
    config = make_project(tmp_path / "project",
                          "web: {allowed_hosts: [jobs.example.com]}\n" + JOBS)
    with web_server(config) as port:
        status, headers, body = send(port, "GET", "/api/v1/csrf", f"{EVIL}:{port}")
        cookie, token = "", ""
        if status == 200:  # the attack goes on: what the unprotected server answered
            cookie = headers["Set-Cookie"].split(";")[0]
            token = json.loads(body)["csrf_token"]
        launch, _, _ = send(port, "POST", "/api/v1/jobs/fetch/launch", f"{EVIL}:{port}",
                            {"Cookie": cookie, "X-CSRFToken": token,
                             "Origin": f"http://{EVIL}:{port}"})
        assert (status, launch) == (400, 400), body
        assert "Host" in body
        for host in (EVIL, f"localhost.{EVIL}:{port}", f"127.0.0.1.{EVIL}", "jobs.example.com.",
                     ""):
            assert send(port, "GET", "/", host)[0] == 400, host
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost",
                     "jobs.example.com", f"jobs.example.com:{port}"):
            assert send(port, "GET", "/api/v1/jobs", host)[0] == 200, host
    with open_storage("sqlite:///jobcontrol.db", base_dir=config.parent) as storage:
        assert storage.list_builds() == []


def test_with_auth_any_host_is_served_unless_hosts_are_listed(tmp_path: Path) -> None:
    """With a login, a rebound page has no session (cookies go by host name): any Host is
    served, unless ``allowed_hosts`` narrows it."""
    auth = "  auth: {token: api-token-0123456789}\n"
    bearer = {"Authorization": "Bearer api-token-0123456789"}
    for listed, expected in (("", 200), ("  allowed_hosts: [jobs.example.com]\n", 400)):
        config = make_project(tmp_path / f"p{expected}", "web:\n" + auth + listed + JOBS)
        client = create_app(JobControl.from_config(config, "memory://")).test_client()
        assert client.get("/api/v1/jobs", headers={**bearer, "Host": EVIL}).status_code == \
            expected
        assert client.get("/api/v1/jobs", headers={**bearer, "Host": "jobs.example.com"}
                          ).status_code == 200


# -- 8. cookies over HTTPS, behind a proxy ---------------------------------------------------


def session_cookie(response: Any) -> str:
    [cookie] = [v for k, v in response.headers.items()
                if k == "Set-Cookie" and v.startswith("session=")]
    return str(cookie)


def test_the_session_cookie_is_secure_over_https_and_behind_a_configured_proxy(
        tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.7"}
    plain = make_project(tmp_path / "plain", JOBS)
    app = create_app(JobControl.from_config(plain, "memory://"))
    assert "Secure" not in session_cookie(app.test_client().get("/"))
    https = app.test_client().get("/", base_url="https://localhost")
    assert "Secure" in session_cookie(https) and "HttpOnly" in session_cookie(https)
    ignored = app.test_client().get("/", headers=forwarded)  # no proxy configured
    assert ignored.status_code == 200 and "Secure" not in session_cookie(ignored)

    proxied = make_project(tmp_path / "proxied", "web: {proxy: {x_for: 1, x_proto: 1}}\n" + JOBS)
    app = create_app(JobControl.from_config(proxied, "memory://"))
    through = app.test_client().get("/", headers={"X-Forwarded-Proto": "https"})
    assert through.status_code == 200 and "Secure" in session_cookie(through)
    assert "Secure" not in session_cookie(app.test_client().get("/"))
    # the proxy's client is the one the loopback rule sees: a remote one is refused
    assert app.test_client().get("/", headers=forwarded).status_code == 403
    # a header no proxy count is given for stays ignored (ProxyFix's own default trusts one)
    proto_only = make_project(tmp_path / "proto", "web: {proxy: {x_proto: 1}}\n" + JOBS)
    app = create_app(JobControl.from_config(proto_only, "memory://"))
    response = app.test_client().get("/", headers=forwarded)
    assert response.status_code == 200 and "Secure" in session_cookie(response)
