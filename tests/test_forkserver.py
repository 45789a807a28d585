"""The fork server: process-isolated builds forked by a small helper process.

The shared process tests (tests/test_processes.py, tests/test_reliability.py) run again with
``sqlite+forkserver``; here: where the builds really ran, when a server is used, and what
happens when it cannot serve or dies.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jobcontrol import BuildState, JobControl
from jobcontrol.errors import ConfigError
from jobcontrol.execution.forkserver import ForkServer, ForkServerError, _Server, available
from jobcontrol.execution.local import LocalExecutor
from jobcontrol.storage import open_storage
from tests.processes import alive, run, wait_for
from tests.support import make_project

pytestmark = pytest.mark.skipif(not available(), reason="a fork server needs Linux pidfds")


def jobs_yaml(count: int, fork_server: str | None = None, function: str = "jobfuncs.whoami"
              ) -> str:
    runner = f"runner: {{fork_server: {fork_server}}}\n" if fork_server else ""
    jobs = "".join(f"  - {{id: job{n}, function: {function}, kwargs: {{tag: t{n}}}}}\n"
                   for n in range(count))
    return f"{runner}jobs:\n{jobs}"


def build_all(tmp_path: Path, yaml_text: str) -> list:
    config = make_project(tmp_path / "project", yaml_text)
    with JobControl.from_config(config, storage=f"sqlite:///{tmp_path / 'jc.db'}") as jc:
        builds = jc.build(list(jc.config.jobs))
        logs = {b.id: [r.message for r in jc.storage.get_logs(b.id)] for b in builds}
    return [(b, logs[b.id]) for b in builds]


def test_builds_from_a_fork_server_are_captured_like_forked_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JC_TEST_VALUE", "seen")  # set after the test process started
    monkeypatch.chdir(tmp_path)
    results = build_all(tmp_path, jobs_yaml(3, "true"))
    servers = set()
    for n, (build, messages) in enumerate(results):
        assert build.state is BuildState.SUCCESS, build.reason
        value = build.retval
        assert value["ppid"] != os.getpid()  # forked by the server, not by us
        assert value["pid"] != value["ppid"]
        assert value["env"] == "seen"
        assert value["cwd"] == str(tmp_path)
        assert value["build"] == build.id
        assert messages == [f"printed t{n}", f"logged t{n}", f"from a subprocess t{n}"]
        servers.add(value["ppid"])
    assert len(servers) == 1  # one server for the run
    [server] = servers
    deadline = time.monotonic() + 5
    while alive(server) and time.monotonic() < deadline:  # closed with the run
        time.sleep(0.02)
    assert not alive(server)


def test_auto_uses_a_server_for_a_large_run_only(tmp_path: Path) -> None:
    small = build_all(tmp_path / "small", jobs_yaml(2))
    assert {b.retval["ppid"] for b, _ in small} == {os.getpid()}
    large = build_all(tmp_path / "large", jobs_yaml(20))
    parents = {b.retval["ppid"] for b, _ in large}
    assert len(parents) == 1 and os.getpid() not in parents
    never = build_all(tmp_path / "never", jobs_yaml(20, "false"))
    assert {b.retval["ppid"] for b, _ in never} == {os.getpid()}


def test_a_failure_in_a_server_child_keeps_its_traceback(tmp_path: Path) -> None:
    [(build, messages)] = build_all(tmp_path, "runner: {fork_server: true}\njobs:\n"
                                    "  - {id: bad, function: jobfuncs.fails}\n")
    assert build.state is BuildState.FAILED
    assert build.reason == "ValueError: bad row 12"
    assert "raise ValueError(message)" in build.exception.traceback
    assert messages == ["about to fail"]


def test_arguments_that_do_not_pickle_fork_from_the_runner(tmp_path: Path) -> None:
    make_project(tmp_path, "jobs: []\n")  # jobfuncs beside it, importable
    import jobfuncs  # type: ignore[import-not-found]

    storage = open_storage(f"sqlite:///{tmp_path / 'jc.db'}")
    executor = LocalExecutor(storage)
    try:
        assert executor.use_fork_server()
        build = storage.claim_build("job", concurrency=1, definition={}, definition_hash="h",
                                    dependency_builds={}, host="here", pid=os.getpid())
        # a lambda cannot be sent to the server: the runner forks this build itself
        executor.start(build, jobfuncs.make, ("tag",), {"value": lambda: 1},
                       result_mode="repr", function_path="jobfuncs.make")
        [done] = executor.wait(timeout=30)
        assert done.state is BuildState.SUCCESS, done.reason
        assert "<function" in done.result.data
    finally:
        executor.close()
        storage.close()


def test_a_dead_server_fails_its_running_build_and_the_run_goes_on(tmp_path: Path) -> None:
    config = make_project(tmp_path / "project", "runner: {fork_server: true}\njobs:\n"
                          "  - {id: parricide, function: jobfuncs.kill_parent}\n"
                          "  - {id: after, function: jobfuncs.whoami}\n")
    code, _, err = run("-c", str(config), "build", "parricide", "after", "--keep-going",
                         "--format", "json")
    assert code == 1, err
    with open_storage(f"sqlite:///{config.parent / 'jobcontrol.db'}") as storage:
        first, second = storage.get_build(1), storage.get_build(2)
    assert first.state is BuildState.FAILED
    # it killed the server before or after the server answered the runner: either way the
    # build ends there, started once (a second start would have killed the runner: exit -9)
    assert first.reason == "killed by signal SIGKILL (9)" or first.reason.startswith(
        "could not start a process: the fork server died while starting it")
    # the server is gone: the runner forks the next build itself
    assert second.state is BuildState.SUCCESS, second.reason
    assert second.retval["ppid"] == second.pid


def test_kill_9_of_the_runner_takes_server_and_job_down(tmp_path: Path) -> None:
    config = make_project(tmp_path / "project", "runner: {fork_server: true}\njobs:\n"
                          "  - id: napper\n    function: jobfuncs.sleeper\n"
                          "    kwargs: {seconds: 60, marker: napper.pid}\n")
    from tests.processes import jobcontrol

    runner = jobcontrol("-c", str(config), "build", "napper")
    job_pid = int(wait_for(config.parent / "napper.pid"))
    server_pid = int(Path(f"/proc/{job_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert server_pid != runner.pid
    spares = wait_for_idle_spares(server_pid, {job_pid})
    assert spares
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=10)
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in {job_pid, server_pid, *spares}) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(server_pid)
    assert not alive(job_pid)
    assert not any(alive(pid) for pid in spares)


def test_sigterm_to_the_runners_process_group_cancels_the_build(tmp_path: Path) -> None:
    """As a service manager stops a unit: the server ignores it, the runner records why."""
    config = make_project(tmp_path / "project", "runner: {fork_server: true}\njobs:\n"
                          "  - id: napper\n    function: jobfuncs.sleeper\n"
                          "    kwargs: {seconds: 60, marker: napper.pid}\n")
    from tests.processes import jobcontrol

    runner = jobcontrol("-c", str(config), "build", "napper", start_new_session=True)
    job_pid = int(wait_for(config.parent / "napper.pid"))
    server_pid = int(Path(f"/proc/{job_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.killpg(runner.pid, signal.SIGTERM)
    _, err = runner.communicate(timeout=20)
    assert runner.returncode == 1, err
    with open_storage(f"sqlite:///{config.parent / 'jobcontrol.db'}") as storage:
        build = storage.get_build(1)
    assert build.state is BuildState.CANCELLED
    assert build.reason == "interrupted by SIGTERM"
    deadline = time.monotonic() + 5
    while (alive(job_pid) or alive(server_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(job_pid) and not alive(server_pid)


def test_server_refuses_a_function_it_cannot_import(tmp_path: Path) -> None:
    server = ForkServer()
    pipes = [os.pipe() for _ in range(3)]
    try:
        with pytest.raises(ForkServerError, match="No module named 'no_such_module_here'"):
            server.spawn("no_such_module_here.f", (), {}, (None, "json", None),
                         tuple(w for _, w in pipes))
        with pytest.raises(ForkServerError, match="cannot send the job's arguments"):
            server.spawn("os.getpid", (lambda: 1,), {}, (None, "json", None),
                         tuple(w for _, w in pipes))
    finally:
        server.close()
        for r, w in pipes:
            os.close(r)
            os.close(w)
    assert server._process.returncode == 0


@pytest.mark.parametrize("value, message", [
    ("sometimes", "runner: bad fork_server 'sometimes': use true, false or auto"),
    ("1", "runner: bad fork_server 1: use true, false or auto"),
])
def test_fork_server_setting_is_checked(tmp_path: Path, value: str, message: str) -> None:
    config = make_project(tmp_path, f"runner: {{fork_server: {value}}}\njobs: []\n")
    with pytest.raises(ConfigError) as caught:
        JobControl.from_config(config)
    assert message in str(caught.value)
    assert f"{config}:1:" in str(caught.value)


@pytest.mark.parametrize("value, expected", [("auto", None), ("true", True), ("false", False)])
def test_fork_server_setting_values(tmp_path: Path, value: str, expected: bool | None) -> None:
    config = make_project(tmp_path, f"runner: {{fork_server: {value}}}\njobs: []\n")
    with JobControl.from_config(config, storage="memory://") as jc:
        assert jc.config.runner.fork_server is expected


def test_a_run_leaves_no_thread_or_server_behind(tmp_path: Path) -> None:
    """A long-lived process (the scheduler) makes run after run: each cleans up."""
    import threading

    before = {t.ident for t in threading.enumerate()}
    config = make_project(tmp_path / "project", "runner: {fork_server: true}\njobs:\n"
                          "  - {id: quick, function: jobfuncs.noop, isolation: inline}\n"
                          "  - {id: forked, function: jobfuncs.whoami}\n")
    with JobControl.from_config(config, storage=f"sqlite:///{tmp_path / 'jc.db'}") as jc:
        servers = set()
        for _ in range(3):
            builds = jc.build(["quick", "forked"])
            assert [b.state for b in builds] == [BuildState.SUCCESS] * 2
            servers.add(builds[1].retval["ppid"])
    assert len(servers) == 3  # a server per run, each gone with its run
    assert not any(alive(pid) for pid in servers)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
        if not left:
            break
        time.sleep(0.05)
    assert not left, left


# -- the server's spares, seen through an executor that forks from a server ------------------


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """An executor with a fork server; ``build(function, *args, **kwargs)`` runs a function
    of jobfuncs there and returns the recorded build (``build_from(path, func, args,
    kwargs)``: the function at ``path``, ``func`` in this process). ``notes`` is a file
    :class:`Traced` arguments write to (``Traced`` is jobfuncs' class)."""
    make_project(tmp_path, "jobs: []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import jobfuncs  # type: ignore[import-not-found]

    storage = open_storage(f"sqlite:///{tmp_path / 'jc.db'}")
    executor = LocalExecutor(storage)

    def build_from(path: str, func: Any, args: tuple, kwargs: dict,
                   timeout: float | None = None) -> Any:
        claimed = storage.claim_build("job", concurrency=1, definition={},
                                      definition_hash="h", dependency_builds={},
                                      host="here", pid=os.getpid())
        executor.start(claimed, func, args, kwargs, function_path=path, timeout=timeout)
        [done] = executor.wait(timeout=30)
        return done

    def build(function: str, *args: Any, **kwargs: Any) -> Any:
        return build_from(f"jobfuncs.{function}", getattr(jobfuncs, function), args, kwargs)

    try:
        assert executor.use_fork_server()
        yield SimpleNamespace(build=build, build_from=build_from,
                              server=executor._fork_server, jobfuncs=jobfuncs,
                              notes=tmp_path / "notes.txt", storage=storage,
                              close=executor.close)
    finally:
        executor.close()
        storage.close()


def notes(path: Path) -> list[tuple[str, int]]:
    """What :class:`Traced` arguments wrote: (``load`` or ``call``, pid)."""
    if not path.exists():
        return []
    return [(what, int(pid)) for what, pid in
            (line.split() for line in path.read_text().splitlines())]


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():  # pragma: no cover - a kernel without CONFIG_PROC_CHILDREN
        pytest.skip("/proc/PID/task/TID/children is needed to find the spares")
    return {int(child) for child in path.read_text().split()}


def exited(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie, or collected already)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in "ZX"


def wait_for_idle_spares(server_pid: int, but: set[int]) -> set[int]:
    """Wait until the server has its spares (its children but ``but``, and but those that
    exited), all asleep: they finished rehearsing and wait for a build; their pids."""
    time.sleep(0.1)
    deadline = time.monotonic() + 10
    while True:
        states = {}
        for pid in children(server_pid) - but:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:  # pragma: no cover - gone meanwhile
                continue
            states[pid] = stat.rsplit(")", 1)[1].split()[0]
        spares = {pid for pid, state in states.items() if state not in "ZX"}
        if (len(spares) >= _Server.SPARES and all(states[pid] == "S" for pid in spares)) \
                or time.monotonic() > deadline:
            return spares
        time.sleep(0.02)


def test_each_build_gets_the_folder_and_environment_of_its_request(
        served: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes between builds reach the next build, whichever spare takes it (one forked
    before the change too); an unchanged environment is not sent again."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    steps = [(first, "one"), (first, "one"), (second, "two"), (second, None), (first, None),
             (first, "three"), (first, "three")]
    pids = []
    for n, (folder, value) in enumerate(steps):
        monkeypatch.chdir(folder)
        if value is None:
            monkeypatch.delenv("JC_TEST_VALUE", raising=False)
        else:
            monkeypatch.setenv("JC_TEST_VALUE", value)
        build = served.build("traced", served.jobfuncs.Traced(str(served.notes)), tag=f"t{n}")
        assert build.state is BuildState.SUCCESS, build.reason
        seen = build.retval
        assert (seen["cwd"], seen["env"]) == (str(folder), value), n
        assert seen["ppid"] == served.server.pid
        assert seen["calls"] == 1  # a process of its own
        assert seen["build"] == build.id
        pids.append(seen["pid"])
    assert len(set(pids)) == len(steps)
    assert [pid for what, pid in notes(served.notes) if what == "call"] == pids


def test_environment_changes_are_seen_without_cpythons_environ_data(
        served: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ``os.environ`` has no ``_data`` (CPython's encoded copy), the runner compares
    decoded copies."""
    from jobcontrol.execution import forkserver

    class Os:  # os, with an environ that is a plain dict
        def __init__(self) -> None:
            self.environ = dict(os.environ)

        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

    fake = Os()
    monkeypatch.setattr(forkserver, "os", fake)
    seen = []
    for value in ["plain", "plain", "changed"]:
        fake.environ["JC_TEST_VALUE"] = value
        build = served.build("traced", served.jobfuncs.Traced(str(served.notes)))
        assert build.state is BuildState.SUCCESS, build.reason
        seen.append(build.retval["env"])
    assert seen == ["plain", "plain", "changed"]


def test_a_spare_that_died_is_replaced_and_the_build_runs_once(
        served: SimpleNamespace) -> None:
    first = served.build("traced", served.jobfuncs.Traced(str(served.notes)))
    assert first.state is BuildState.SUCCESS, first.reason
    spares = wait_for_idle_spares(served.server.pid, {first.retval["pid"]})
    assert spares
    for pid in spares:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in spares) and time.monotonic() < deadline:
        time.sleep(0.01)
    second = served.build("traced", served.jobfuncs.Traced(str(served.notes)))
    assert second.state is BuildState.SUCCESS, second.reason
    assert second.retval["pid"] not in spares
    assert second.retval["ppid"] == served.server.pid  # forked by the server all the same
    calls = [pid for what, pid in notes(served.notes) if what == "call"]
    assert calls == [first.retval["pid"], second.retval["pid"]]


def test_a_rehearsed_spare_runs_its_build_afresh_and_no_job_code_before(
        served: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spares rehearse while they wait (see jobcontrol.execution.forkserver._spare). Each build
    still runs in a process of its own forked by the server, in the folder and environment of its
    request, with its own logs only; nothing of a job runs, loads or logs in a spare before
    its build comes."""
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    monkeypatch.setenv("JC_TEST_VALUE", "before")
    first = served.build("traced", served.jobfuncs.Traced(str(served.notes)), tag="first")
    assert first.state is BuildState.SUCCESS, first.reason
    builds = [first.retval["pid"]]
    for n in range(4):
        wait_for_idle_spares(served.server.pid, set(builds))  # rehearsed, waiting
        monkeypatch.chdir(folders[n % 2])
        monkeypatch.setenv("JC_TEST_VALUE", f"value {n // 2}")  # every other build
        build = served.build("traced", served.jobfuncs.Traced(str(served.notes)), tag=f"t{n}")
        assert build.state is BuildState.SUCCESS, build.reason
        seen = build.retval
        assert seen["rehearsed"] is True
        assert seen["calls"] == 1  # a process that ran no build (nor this job) before
        assert seen["ppid"] == served.server.pid and seen["pid"] not in builds
        assert (seen["cwd"], seen["env"]) == (str(folders[n % 2]), f"value {n // 2}")
        assert seen["build"] == build.id
        logs = [r.message for r in served.storage.get_logs(build.id)]
        assert logs == [f"printed t{n}", f"logged t{n}"]
        assert served.storage.get_progress(build.id) == []
        builds.append(seen["pid"])
    spares = wait_for_idle_spares(served.server.pid, set(builds))
    assert spares  # rehearsed, and waiting for builds that will not come
    # the job's argument was loaded by the server (which checks it) and by each build's
    # process, and the job called in the builds' processes only, once each
    noted = notes(served.notes)
    assert [pid for what, pid in noted if what == "call"] == builds
    assert sorted(pid for what, pid in noted if what == "load") == sorted(
        [served.server.pid] * len(builds) + builds)


def test_spares_wait_for_builds_and_go_with_the_server(served: SimpleNamespace) -> None:
    """The server keeps two spares; it collects the builds' processes the runner is done
    with (told with the next request: the last one is left to the system)."""
    builds = [served.build("traced", served.jobfuncs.Traced(str(served.notes)))
              for _ in range(4)]
    assert [b.state for b in builds] == [BuildState.SUCCESS] * 4
    pids = {b.retval["pid"] for b in builds}
    # each request tells the server of the processes released since the one before; it
    # collects those that have exited by then (on a busy machine the last one or two may
    # still be on their way out: collected at a later request)
    earlier = {b.retval["pid"] for b in builds[:-1]}
    deadline = time.monotonic() + 10
    while not all(exited(pid) for pid in earlier) and time.monotonic() < deadline:
        time.sleep(0.02)
    last = served.build("traced", served.jobfuncs.Traced(str(served.notes)))
    pids.add(last.retval["pid"])
    spares = wait_for_idle_spares(served.server.pid, pids)
    assert len(spares) == _Server.SPARES == 2
    assert not children(served.server.pid) & earlier  # collected
    server = served.server.pid
    served.close()
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in {server, *spares}) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(alive(pid) for pid in {server, *spares})


@pytest.mark.parametrize("taken", [0, 2, 4, 9])
def test_a_message_is_sent_whole_when_the_socket_takes_part_of_it(taken: int) -> None:
    """One sendmsg per message (header, payload, descriptors); what it did not take is
    sent after."""
    from jobcontrol.execution.forkserver import _HEADER, _send_raw

    class Socket:
        def __init__(self) -> None:
            self.data = b""

        def sendmsg(self, buffers: list[bytes], ancdata: list) -> int:
            self.data += b"".join(buffers)[:taken]
            return taken

        def sendall(self, data: bytes) -> None:
            self.data += bytes(data)

    sock = Socket()
    _send_raw(sock, b"payload")  # type: ignore[arg-type]
    assert sock.data == _HEADER.pack(7) + b"payload"


def test_rehearsals_leave_the_servers_log_handlers_alone(
        served: SimpleNamespace, tmp_path: Path) -> None:
    """A job module that configures logging when imported gives the server (which imports
    it) a root handler: the rehearsals, the server's and the spares', write nothing to it,
    and the builds log to their capture as ever."""
    log_file = tmp_path / "configured.log"
    (tmp_path / "configured_logging.py").write_text(
        "import logging, os\n"
        "logging.basicConfig(filename=os.path.join(os.path.dirname(__file__), "
        "'configured.log'), level=logging.DEBUG)\n"
        "def job(tag):\n"
        "    logging.getLogger('configured').info('job %s', tag)\n"
        "    return tag\n")

    def not_here(tag: str) -> None:  # the module is imported by the server only
        raise AssertionError("forked by the runner")

    for n in range(3):
        build = served.build_from("configured_logging.job", not_here, (f"t{n}",), {})
        assert build.state is BuildState.SUCCESS, build.reason
        assert [r.message for r in served.storage.get_logs(build.id)] == [f"job t{n}"]
        wait_for_idle_spares(served.server.pid, set())
    assert log_file.read_text() == ""  # created by basicConfig, in the server


def warmed_up(served: SimpleNamespace) -> None:
    """A first build, then its replacements rehearsed: the next build comes to a spare
    that rehearsed."""
    first = served.build("noop", "first")
    assert first.state is BuildState.SUCCESS, first.reason
    wait_for_idle_spares(served.server.pid, set())


def test_a_timeout_unwinds_a_build_of_a_rehearsed_spare(served: SimpleNamespace) -> None:
    """The SIGTERM handler a spare sets while it waits unwinds the job (its finally runs),
    and the build is recorded as timed out."""
    warmed_up(served)
    build = served.build_from("jobfuncs.unwinds", served.jobfuncs.unwinds,
                              ("unwound.txt",), {}, timeout=0.5)
    assert build.state is BuildState.FAILED
    assert build.reason == "timed out after 500ms"
    note = (Path(served.jobfuncs.__file__).parent / "unwound.txt").read_text()
    assert note.startswith("unwound ") and int(note.split()[1]) != served.server.pid
    assert [r.message for r in served.storage.get_logs(build.id)] == ["sleeping"]


def test_a_rehearsed_spare_killed_by_a_signal_keeps_its_log(served: SimpleNamespace) -> None:
    warmed_up(served)
    build = served.build("kill_self")
    assert build.state is BuildState.FAILED
    assert build.reason == "killed by signal SIGKILL (9)"
    assert [r.message for r in served.storage.get_logs(build.id)] == [
        "line before the kill", "second line before the kill"]


def test_rehearsed_spares_take_a_module_new_to_them_and_a_job_that_forks(
        served: SimpleNamespace, tmp_path: Path) -> None:
    """A function of a module the server imports at its first build (the spares ready
    then were forked before: they import it themselves), and a job that forks."""
    warmed_up(served)
    (tmp_path / "newcomer.py").write_text(
        "import os\n"
        "def job(tag):\n"
        "    print('newcomer', tag)\n"
        "    return os.getpid()\n")

    def not_here(tag: str) -> None:  # pragma: no cover - the server imports it
        raise AssertionError("forked by the runner")

    pids = set()
    for n in range(3):  # the spares forked before the import, then one forked after
        build = served.build_from("newcomer.job", not_here, (f"t{n}",), {})
        assert build.state is BuildState.SUCCESS, build.reason
        assert [r.message for r in served.storage.get_logs(build.id)] == [f"newcomer t{n}"]
        pids.add(build.retval)
    assert len(pids) == 3 and served.server.pid not in pids
    build = served.build("forks", "t")
    assert build.state is BuildState.SUCCESS, build.reason
    assert build.retval["ppid"] == served.server.pid
    assert sorted(r.message for r in served.storage.get_logs(build.id)) == [
        "child exited 3", "from the job's child t"]
