"""Sending builds never hangs and never leaves a build ``queued`` unsent: a broker that takes
connections and never answers (a listener thread here that accepts and stays silent) fails
``build --async`` within ``executor.timeout`` with one line and exit 7; Ctrl-C or SIGTERM
while sending does the same; the builds not sent are ``cancelled`` with the reason. On
SQLite and on PostgreSQL, through the Redis and the AMQP client (no real broker needed).

Also: the executor's ``timeout`` and ``transport_options`` reach the Celery app's conf.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcontrol import JobControl
from jobcontrol.config import ExecutorSettings, parse_config
from jobcontrol.errors import ConfigError, ExitCode
from jobcontrol.execution.sending import SendingInterrupted
from jobcontrol.models import Build
from jobcontrol.storage import Storage
from jobcontrol.storage.sql import load_migrations
from tests.processes import Project
from tests.support import make_project

pytest.importorskip("celery", reason="the Celery tests need pip install 'jobcontrol[celery]'")

CONFIG = """\
executor: {{type: celery, broker: "{broker}", queue: silent, timeout: {timeout}}}
jobs:
  - {{id: a, function: jobfuncs.noop}}
  - {{id: b, function: jobfuncs.noop, dependencies: [a]}}
"""


class SilentBroker:
    """A TCP listener that accepts every connection, reads nothing and answers nothing."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed
            self.held.append(conn)
            self.accepted.set()

    def url(self, scheme: str) -> str:
        if scheme == "redis":
            return f"redis://127.0.0.1:{self.port}/0"
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentBroker]:
    broker = SilentBroker()
    yield broker
    broker.close()


@pytest.fixture(params=["redis", "amqp"])
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_kind(request: pytest.FixtureRequest) -> pytest.FixtureRequest:
    return request


def project(storage_kind: pytest.FixtureRequest, tmp_path: Path, broker: str,
            timeout: str) -> Project:
    return Project.on(storage_kind, tmp_path, CONFIG.format(broker=broker, timeout=timeout))


def on_sqlite(tmp_path: Path, config: str) -> Project:
    return Project(make_project(tmp_path / "project", config), None)


def builds(project: Project) -> list[dict]:
    code, out, err = project.run("builds", "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_a_silent_broker_fails_build_async_within_its_timeout(
        storage_kind: pytest.FixtureRequest, tmp_path: Path, silent: SilentBroker,
        scheme: str) -> None:
    made = project(storage_kind, tmp_path, silent.url(scheme), "1s")
    # the process's own timeout (60 s) only stops a hang from hanging the test suite
    code, out, err = made.run("build", "b", "--deps", "--async")
    assert silent.accepted.is_set()  # it did reach the listener: the timeout ended it
    assert code == ExitCode.BROKER, out + err
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("Error: cannot send build 1 to the broker ")
    assert "no answer within 1s (executor.timeout)" in line
    assert "guest:guest" not in line  # the password is hidden
    shown = builds(made)
    assert {b["state"] for b in shown} == {"cancelled"}, shown
    assert [b["job"] for b in shown] == ["b", "a"]
    for build in shown:
        assert build["reason"].startswith("not sent to the workers: cannot send build 1")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_sending_leaves_nothing_queued(
        storage_kind: pytest.FixtureRequest, tmp_path: Path, silent: SilentBroker,
        scheme: str, signum: signal.Signals) -> None:
    made = project(storage_kind, tmp_path, silent.url(scheme), "5m")
    process = made.start("build", "b", "--deps", "--async")
    try:
        assert silent.accepted.wait(60), "build --async never reached the broker"
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)  # a hang: it did not stop
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == ExitCode.BROKER, out + err
    assert err == (f"Error: interrupted by {signum.name} while sending builds to the broker; "
                   f"cancelled what was not sent: build 1, 2\n")
    shown = builds(made)
    assert {b["state"] for b in shown} == {"cancelled"}, shown
    assert {b["reason"] for b in shown} == {
        f"not sent to the workers: interrupted by {signum.name}"}


def test_check_says_a_silent_broker_does_not_answer(tmp_path: Path, silent: SilentBroker,
                                                    scheme: str) -> None:
    made = on_sqlite(tmp_path, CONFIG.format(broker=silent.url(scheme), timeout="1s"))
    code, out, err = made.run("check", "--no-import")
    assert code == ExitCode.BROKER, out + err
    assert out.splitlines()[0].endswith(": 2 jobs, valid; functions not imported (--no-import)")
    [line] = err.splitlines()
    assert line.startswith(f"Error: broker {silent.url(scheme).replace('guest:guest', 'guest:***')}"
                           f": no answer within 1s (executor.timeout)"), line


# -- the settings reach Celery ----------------------------------------------------------


def test_timeouts_and_transport_options_reach_the_app_conf() -> None:
    from jobcontrol.execution.celery import make_app

    redis = make_app(ExecutorSettings(
        type="celery", broker="redis://127.0.0.1:6379/0", timeout=3.0,
        transport_options={"visibility_timeout": 7200.0, "queue_order_strategy": "priority"}))
    assert redis.conf.broker_connection_timeout == 3.0
    assert redis.conf.broker_transport_options == {
        "visibility_timeout": 7200.0, "socket_connect_timeout": 3.0, "socket_timeout": 3.0,
        "queue_order_strategy": "priority"}
    amqp = make_app(ExecutorSettings(type="celery", broker="amqp://guest@127.0.0.1//",
                                     transport_options={"confirm_publish": True}))
    assert amqp.conf.broker_connection_timeout == 10.0  # the default
    assert amqp.conf.broker_transport_options == {
        "read_timeout": 10.0, "write_timeout": 10.0, "confirm_publish": True}
    # and the connection Celery makes is handed them
    with redis.connection_for_write() as connection:
        assert connection.transport_options["visibility_timeout"] == 7200.0
        assert connection.connect_timeout == 3.0


def test_the_executor_options_in_the_config(tmp_path: Path) -> None:
    config = parse_config(
        "executor:\n  type: celery\n  broker: redis://h:6379/0\n  timeout: 2s\n"
        "  transport_options: {visibility_timeout: 1h, socket_keepalive: true,\n"
        "                      priority_steps: [0, 5, 9], health_check_interval: 30}\n"
        "jobs: []\n", tmp_path / "jobs.yaml")
    assert config.executor.timeout == 2.0
    assert config.executor.transport_options == {
        "visibility_timeout": 3600.0, "socket_keepalive": True, "priority_steps": [0, 5, 9],
        "health_check_interval": 30.0}
    assert config.executor.as_json()["transport_options"]["visibility_timeout"] == 3600.0


@pytest.mark.parametrize(("text", "message"), [
    ("{type: celery, broker: 'redis://h', timeout: 0}",
     ":1:56: executor: timeout must be more than 0"),
    ("{type: celery, broker: 'redis://h', timeout: soon}",
     ":1:56: executor: bad timeout: expected a duration"),
    ("{type: local, timeout: 5s}", ":1:34: executor: timeout is only for type: celery"),
    ("{type: local, transport_options: {}}", ":1:44: executor: transport_options is only for"),
    ("{type: celery, broker: 'redis://h', transport_options: [1]}",
     ":1:66: executor: transport_options must be a mapping such as "
     "{visibility_timeout: 1h}, got list"),
    ("{type: celery, broker: 'redis://h', transport_options: {visibility_timeout: long}}",
     ":1:87: executor: transport_options: bad visibility_timeout"),
    ("{type: celery, broker: 'redis://h', transport_options: {sep: {a: 1}}}",
     ":1:72: executor: transport_options: sep must be a string, a number, a boolean or a "
     "list of them, got mapping"),
])
def test_bad_executor_options_are_located(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"executor: {text}\njobs: []\n", tmp_path / "jobs.yaml")
    assert message in str(caught.value)


def test_build_async_of_a_stopped_process_is_not_reached(tmp_path: Path) -> None:
    """Not a hang: a refused connection (nothing listens) fails at once, exit 7."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    made = on_sqlite(tmp_path, CONFIG.format(broker=f"redis://127.0.0.1:{port}/0",
                                             timeout="3s"))
    code, out, err = made.run("build", "a", "--async")
    assert code == ExitCode.BROKER, out + err
    assert "Connection refused" in err
    assert [b["state"] for b in builds(made)] == ["cancelled"]



def test_the_web_launch_on_a_broker_that_is_down_says_503(tmp_path: Path) -> None:
    pytest.importorskip("flask", reason="needs the web extra")
    from jobcontrol.web import create_app

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    config = make_project(tmp_path, CONFIG.format(broker=f"redis://127.0.0.1:{port}/0",
                                                  timeout="3s"))
    with JobControl.from_config(config, f"sqlite:///{tmp_path / 'jobs.db'}") as jc:
        client = create_app(jc).test_client()
        token = client.get("/api/v1/csrf").get_json()["csrf_token"]
        response = client.post("/api/v1/jobs/a/launch", headers={"X-CSRFToken": token})
        assert response.status_code == 503, response.get_json()
        assert "Connection refused" in json.dumps(response.get_json())
        [build] = jc.builds()
        assert build.state.value == "cancelled"


def test_check_no_import_on_a_machine_without_the_job_code(tmp_path: Path) -> None:
    """Where builds are only queued, the job modules are not there: ``check --no-import``
    validates the config, the storage and the broker without them."""
    url = os.environ.get("JOBCONTROL_TEST_REDIS")
    if not url:
        pytest.skip("needs $JOBCONTROL_TEST_REDIS, e.g. redis://127.0.0.1:6379/5")
    text = (CONFIG.format(broker=url, timeout="5s")
            .replace("jobfuncs.noop", "pipeline_not_here.run"))
    made = on_sqlite(tmp_path, text)
    code, out, err = made.run("check")
    assert code == ExitCode.USAGE, out + err
    assert "pipeline_not_here" in err
    code, out, err = made.run("check", "--no-import")
    assert (code, err) == (0, ""), out
    latest = len(load_migrations("sqlite"))
    assert out.splitlines() == [
        f"{made.config}: 2 jobs, valid; functions not imported (--no-import)",
        f"storage {made.storage_url}: writable (schema version {latest})",
        f"broker {url}: reachable",
    ]
    # a mistake in the config is still found: an unknown dependency, with its place
    made.config.write_text(text.replace("dependencies: [a]", "dependencies: [z]"))
    code, out, err = made.run("check", "--no-import")
    assert code == ExitCode.USAGE and "unknown dependency 'z'" in err, err


# -- the same in one process, on every storage backend ------------------------------------


@pytest.fixture
def control(tmp_path: Path, storage: Storage) -> Iterator[JobControl]:
    config = make_project(tmp_path / "project", CONFIG.format(
        broker="redis://127.0.0.1:1/0", timeout="1s"))
    with JobControl.from_config(config, storage) as jc:
        yield jc


def test_ctrl_c_while_a_build_is_sent_cancels_it_and_the_rest(control: JobControl) -> None:
    sent: list[int] = []

    def send(build_id: int, queue: str, **kwargs: object) -> None:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while the broker is waited for
        sent.append(build_id)  # pragma: no cover - never reached

    control._sender = send
    with pytest.raises(SendingInterrupted) as caught:
        control.submit("b", deps=True)
    assert caught.value.exit_code == ExitCode.BROKER
    assert caught.value.cancelled == (1, 2) and sent == []
    assert [(b.state.value, b.reason) for b in control.builds()] == [
        ("cancelled", "not sent to the workers: interrupted by SIGINT")] * 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


def test_ctrl_c_during_a_storage_write_waits_for_the_write(control: JobControl,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    enqueue = control.storage.enqueue_build
    sent: list[int] = []

    def interrupted_write(*args: Any, **kwargs: Any) -> Build | None:
        signal.raise_signal(signal.SIGINT)  # held: the write goes on, and is undone after
        return enqueue(*args, **kwargs)

    monkeypatch.setattr(control.storage, "enqueue_build", interrupted_write)
    control._sender = lambda build_id, queue, **kwargs: sent.append(build_id)
    with pytest.raises(SendingInterrupted):
        control.submit("b", deps=True)
    assert sent == []
    [build] = control.builds()  # the first write was whole; the second never began
    assert (build.job_id, build.state.value) == ("a", "cancelled")


def test_a_signal_handler_of_the_caller_is_asked_instead(control: JobControl) -> None:
    """A caller with a handler of its own (the scheduler's loop) decides; the sending ends."""
    seen: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        def send(build_id: int, queue: str, **kwargs: object) -> None:
            signal.raise_signal(signal.SIGTERM)

        control._sender = send
        builds = control.submit("b", deps=True)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert seen == [signal.SIGTERM]  # one send: b waits for a, whose end sends it
    assert [control.get_build(b.id).state.value for b in builds] == ["queued"] * 2
