"""The web UI under attack: DNS rebinding against a real ``jobcontrol web``, sessions that
must end with their credential, login timing and throttling, cookies behind a proxy.

Attacks on the network (a foreign ``Host:``) go to a real server with a real HTTP client;
what is the app's own logic (sessions, logins) goes through Flask's test client, on SQLite
and PostgreSQL where the storage keeps the state.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import os
import re
import sqlite3
import stat
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from werkzeug.security import generate_password_hash

from jobcontrol import JobControl
from jobcontrol.storage import Storage, open_storage
from jobcontrol.web import create_app
from tests.conftest import make_storage
from tests.processes import jobcontrol
from tests.support import make_project
from tests.web_support import csrf_from

ROOT = Path(__file__).parent.parent
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


# -- 2. sessions end with their credential, their time, their logout ------------------------

TOKEN, PASSWORD = "api-token-0123456789", "correct horse"


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    opened = make_storage(request.param, tmp_path, request)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a generated secret key goes: this test's own folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def auth_app(folder: Path, storage: Storage, *, token: str | None = TOKEN,
             password: str = PASSWORD, lifetime: str = "12h", rounds: int = 1000) -> Flask:
    """The app of a config with user alice and the API token; no secret_key: generated."""
    hashed = password_hash(password, rounds)
    token_line = f"    token: {token}\n" if token else ""
    config = make_project(folder, f"web:\n  session_lifetime: {lifetime}\n  auth:\n"
                                  f"    users: {{alice: '{hashed}'}}\n{token_line}" + JOBS)
    return create_app(JobControl.from_config(config, storage))


@functools.lru_cache
def password_hash(password: str, rounds: int) -> str:
    """One hash a password: configs that keep a user's password keep its hash line."""
    return generate_password_hash(password, method=f"pbkdf2:sha256:{rounds}")


def log_in(client: Any, user: str, password: str, address: str = "127.0.0.1") -> Any:
    remote = {"REMOTE_ADDR": address}
    token = csrf_from(client.get("/login", environ_base=remote).get_data(as_text=True))
    return client.post("/login", environ_base=remote,
                       data={"csrf_token": token, "user": user, "password": password})


def replay(app: Flask, cookie: str) -> int:
    """The status of an API read by a new client presenting ``cookie`` as its session."""
    client = app.test_client()
    client.set_cookie("session", cookie)
    return int(client.get("/api/v1/jobs").status_code)


def test_a_session_ends_when_its_credential_changes(tmp_path: Path,
                                                     shared_storage: Storage) -> None:
    first = auth_app(tmp_path / "first", shared_storage)
    cookies = {}
    for user, password in (("", TOKEN), ("alice", PASSWORD)):
        client = first.test_client()
        assert log_in(client, user, password).status_code == 302
        cookies[user or "token"] = client.get_cookie("session").value
        assert replay(first, cookies[user or "token"]) == 200
    rotated = auth_app(tmp_path / "rotated", shared_storage, token="api-token-rotated-0123")
    assert replay(rotated, cookies["token"]) == 401
    assert replay(rotated, cookies["alice"]) == 200
    removed = auth_app(tmp_path / "removed", shared_storage, token=None)
    assert replay(removed, cookies["token"]) == 401
    changed = auth_app(tmp_path / "changed", shared_storage, password="new password")
    assert replay(changed, cookies["alice"]) == 401
    assert replay(first, cookies["alice"]) == 200  # the old credential: still good


def test_logout_ends_the_session_on_the_server(tmp_path: Path, shared_storage: Storage) -> None:
    app = auth_app(tmp_path / "p", shared_storage)
    client = app.test_client()
    assert log_in(client, "alice", PASSWORD).status_code == 302
    cookie = client.get_cookie("session").value  # a copy kept by whoever could read it
    page = client.get("/").get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": csrf_from(page)}).status_code == 302
    assert replay(app, cookie) == 401


def test_a_session_expires_however_busy(tmp_path: Path, shared_storage: Storage) -> None:
    app = auth_app(tmp_path / "p", shared_storage, lifetime="2s")
    client = app.test_client()
    started = time.monotonic()
    assert log_in(client, "alice", PASSWORD).status_code == 302
    assert client.get_cookie("session").expires is not None  # the browser forgets it too
    assert client.get("/api/v1/jobs").status_code == 200
    while client.get("/api/v1/jobs").status_code == 200:  # in use all along
        assert time.monotonic() - started < 15, "the session never expired"
        time.sleep(0.1)
    assert time.monotonic() - started >= 2
    assert client.get("/api/v1/jobs").status_code == 401


def test_reading_the_database_signs_no_session(tmp_path: Path, state_home: Path) -> None:
    """Whoever reads the SQLite file tries every value in it as the signing key."""
    storage = open_storage("sqlite:///jobs.db", base_dir=tmp_path)
    app = auth_app(tmp_path / "p", storage)
    client = app.test_client()
    assert log_in(client, "", TOKEN).status_code == 302  # a session row exists
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        values = {str(v) for t in tables for row in db.execute(f"SELECT * FROM {t}")
                  for v in row if v is not None}
        sids = [r[0] for r in db.execute("SELECT id FROM web_sessions")] if (
            "web_sessions" in tables) else []
    assert len(values) > 10
    for key in sorted(values):
        forger = Flask("forger")
        forger.secret_key = key
        signer = SecureCookieSessionInterface().get_signing_serializer(forger)
        assert signer is not None
        for sid in sids or ["none"]:
            forged = signer.dumps({"user": "token", "sid": sid, "cred": key})
            assert replay(app, forged) == 401, key
    [key_file] = (state_home / "jobcontrol").iterdir()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == app.secret_key and app.secret_key not in values
    # another process (a gunicorn worker) signs with the same key
    assert auth_app(tmp_path / "q", storage).secret_key == app.secret_key
    storage.close()


# -- 3. logins: the same work for any user name, throttled failures --------------------------


def test_unknown_and_known_users_take_the_same_time(tmp_path: Path) -> None:
    app = auth_app(tmp_path / "p", open_storage("memory://"), rounds=100_000)
    client = app.test_client()
    known: list[float] = []
    unknown: list[float] = []
    for n in range(5):  # interleaved: the machine's load falls on both alike
        for user, times in (("alice", known), (f"nobody{n}", unknown)):
            started = time.perf_counter()
            assert log_in(client, user, "wrong", f"192.0.2.{n}").status_code == 401
            times.append(time.perf_counter() - started)
    assert statistics.median(unknown) > statistics.median(known) / 2, (known, unknown)


def test_failed_logins_are_throttled_per_user_and_address(
        tmp_path: Path, shared_storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    workers = [auth_app(tmp_path / f"w{n}", shared_storage).test_client() for n in range(2)]
    statuses = []
    for attempt in range(30):  # two WSGI workers share the count
        response = log_in(workers[attempt % 2], "alice", f"guess {attempt}", "192.0.2.7")
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert 0 < int(response.headers["Retry-After"]) <= 15 * 60
    assert statuses == [401] * 10 + [429] * 20
    assert log_in(workers[0], "alice", PASSWORD, "192.0.2.7").status_code == 429
    assert log_in(workers[1], "alice", PASSWORD, "198.51.100.1").status_code == 429  # per user
    assert log_in(workers[0], "", TOKEN, "192.0.2.7").status_code == 429  # per address
    assert log_in(workers[1], "", TOKEN, "198.51.100.2").status_code == 302
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("failed login" in m and "'alice'" in m and "192.0.2.7" in m for m in messages)
    assert any("throttled" in m for m in messages)


def test_gunicorn_workers_share_the_key_and_the_sessions(tmp_path: Path) -> None:
    """Three real workers, each generating the key at start: one key, one session table."""
    import socket
    import subprocess
    import sys

    config = make_project(tmp_path / "project", f"web:\n  auth:\n    users: {{alice: '"
                          f"{password_hash(PASSWORD, 1000)}'}}\n" + JOBS)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JOBCONTROL_CONFIG": str(config)}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}",
         "jobcontrol.web:create_app_from_env()"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, headers, body = send(port, "GET", "/login", host)
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "no gunicorn"
                time.sleep(0.1)
        cookie = headers["Set-Cookie"].split(";")[0]
        form = f"csrf_token={csrf_from(body)}&user=alice&password=correct+horse"
        status, headers, body = send(port, "POST", "/login", host, {
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}, form)
        assert status == 302, body
        cookie = headers["Set-Cookie"].split(";")[0]
        statuses = [send(port, "GET", "/", host, {"Cookie": cookie}) for _ in range(12)]
        assert [s[0] for s in statuses] == [200] * 12
        with_csrf = statuses[0][1]["Set-Cookie"].split(";")[0]  # the page's token added
        form = f"csrf_token={csrf_from(statuses[0][2])}"
        assert send(port, "POST", "/logout", host, {
            "Cookie": with_csrf, "Content-Type": "application/x-www-form-urlencoded"},
            form)[0] == 302
        assert [send(port, "GET", "/api/v1/jobs", host, {"Cookie": cookie})[0]
                for _ in range(12)] == [401] * 12
    finally:
        process.terminate()
        process.wait(timeout=20)
