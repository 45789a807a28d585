"""Job callables the tests' YAML files name. Copied beside each test's config file."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
import time
from pathlib import Path

from jobcontrol import SkipBuild, current_build, progress

log = logging.getLogger("jobfuncs")
HERE = Path(__file__).parent


def chatty(name: str = "world") -> dict:
    """Logs at several levels, prints, reports progress, returns a dict."""
    log.debug("debug detail")
    log.info("hello %s", name)
    log.warning("careful")
    print("printed line")
    print("to stderr", file=sys.stderr)
    progress(1, 2, "half way", group=("phase", "one"))
    progress(2, 2, "done", group=("phase", "two"))
    return {"greeting": f"hello {name}", "when": dt.date(2026, 1, 2), "n": 3}


def fails(message: str = "bad row 12") -> None:
    log.info("about to fail")
    raise ValueError(message)


def make(tag: str, value: object = None) -> dict:
    """Returns what it got, so tests can see what a !retval delivered."""
    log.info("making %s", tag)
    build = current_build()
    return {"tag": tag, "got": value, "build": build.id if build else None}


def maybe_skip(flag: str) -> str:
    """Skips when the file named by ``flag`` (beside this module) exists."""
    if (HERE / flag).exists():
        raise SkipBuild("nothing new")
    return "made"


def sleeper(seconds: float = 30, marker: str | None = None) -> str:
    """Sleeps; writes its pid to ``marker`` first so a test can find it."""
    if marker:
        (HERE / marker).write_text(str(os.getpid()))
    log.info("sleeping %s", seconds)
    time.sleep(seconds)
    return "slept"


def kill_self() -> None:
    log.info("line before the kill")
    log.warning("second line before the kill")
    os.kill(os.getpid(), signal.SIGKILL)


def many_lines(count: int = 20000) -> int:
    for i in range(count):
        log.info("line %d", i)
    return count


def not_json() -> object:
    return object()


def record_cleanup(build) -> None:
    """A cleanup_function: leaves a file naming the deleted build."""
    (HERE / f"cleaned-{build.id}").write_text(build.job_id)


def failing_cleanup(build) -> None:
    raise RuntimeError("cannot clean")


def picky_cleanup(build) -> None:
    """A cleanup_function that refuses the builds named by ``refuse-<id>`` files beside it."""
    if (HERE / f"refuse-{build.id}").exists():
        raise RuntimeError(f"build {build.id} is still in use")
    record_cleanup(build)


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


def hostile(kind: str):
    """Return or raise values that are hard to store."""
    if kind == "huge_return":
        return "x" * 50_000_000
    if kind == "bad_str":
        raise BadStr()
    if kind == "surrogates":
        log.info("bad text \udcff here")
        print("printed \udcfe")
        return {"text": "lone \udcff surrogate", b"bytes key".decode(): b"\xff\xfe"}
    if kind == "huge_traceback":
        raise ValueError("m" * 1_000_000)
    if kind == "huge_log":
        log.info("L" * 5_000_000)
        return None
    raise AssertionError(kind)


def leaks_password(user: str, password: str) -> None:
    """Logs its arguments and fails with the password in the message."""
    log.info("connecting as %s with %s", user, password)
    print(f"password={password}")
    raise ConnectionError(f"login failed for {user}:{password}")


def flaky(counter: str, failures: int = 2) -> int:
    """Fails the first ``failures`` times it runs (counted in the file ``counter``)."""
    path = Path(counter)
    runs = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(runs))
    if runs <= failures:
        raise RuntimeError(f"flaky failure {runs}")
    return runs


def stubborn(marker: str, seconds: float = 60) -> str:
    """Ignores SIGTERM (only SIGKILL stops it); writes its pid to ``marker`` first."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    (HERE / marker).write_text(str(os.getpid()))
    log.info("ignoring SIGTERM for %s seconds", seconds)
    time.sleep(seconds)
    return "outlasted"


def steps(count: int = 5, delay: float = 0.2, name: str = "rows") -> dict:
    """Works through ``count`` steps, logging and reporting progress at each, for the web
    UI's live view to follow."""
    for step in range(1, count + 1):
        log.info("step %d of %d", step, count)
        progress(step, count, f"{name} {step}/{count}", group=(name,))
        time.sleep(delay)
    log.warning("done with %d %s", count, name)
    return {"steps": count, "name": name}


def noop(tag: str = "") -> str:
    """Does nothing, quickly; logs one line."""
    log.info("noop %s", tag)
    return tag


def fails_when(flag: str) -> str:
    """Fails while the file ``flag`` (beside this module) exists."""
    if (HERE / flag).exists():
        raise RuntimeError(f"{flag} is set")
    return "fine"


def notify_raises(event: dict) -> None:
    """A notification target that always fails."""
    raise RuntimeError(f"pager down ({event['event']})")


def notify_collect(event: dict) -> None:
    """A notification target that appends each event to notified.jsonl beside this module."""
    import json

    with open(HERE / "notified.jsonl", "a") as handle:
        handle.write(json.dumps(event) + "\n")


def whoami(tag: str = "") -> dict:
    """Where it ran: its process, its parent, working folder, an environment variable, and
    what a subprocess printed (captured at the file-descriptor level)."""
    import subprocess

    print(f"printed {tag}")
    log.info("logged %s", tag)
    subprocess.run(["echo", f"from a subprocess {tag}"], check=True)
    build = current_build()
    return {"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
            "env": os.environ.get("JC_TEST_VALUE"), "build": build.id if build else None}


def states_seen(database: str) -> list:
    """The builds (id, state) as another process sees them in a SQLite file, now."""
    import sqlite3

    conn = sqlite3.connect(database)
    try:
        return [list(row) for row in conn.execute("SELECT id, state FROM builds ORDER BY id")]
    finally:
        conn.close()


def unwinds(marker: str, seconds: float = 30) -> None:
    """Sleeps; notes in ``marker`` (beside this module) that its ``finally`` ran, as it
    does when SIGTERM unwinds the job (a timeout, a cancel)."""
    try:
        log.info("sleeping")
        time.sleep(seconds)
    finally:
        (HERE / marker).write_text(f"unwound {os.getpid()}")


def forks(tag: str = "") -> dict:
    """Forks a process of its own that prints a line, and waits for it."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # the job's child: fd 1 is the build's stdout pipe
        os.write(1, f"from the job's child {tag}\n".encode())
        os._exit(3)
    _, status = os.waitpid(pid, 0)
    print(f"child exited {os.waitstatus_to_exitcode(status)}")
    return {"pid": os.getpid(), "ppid": os.getppid(), "child": pid}


def fill_disk(filler: str, count: int = 1000, free: bool = False) -> dict:
    """Fills the file system ``filler`` (a path beside this module) is on until it is full
    (ENOSPC), then logs ``count`` lines; with ``free``, deletes ``filler`` before returning.
    Returns how long the logging took."""
    path = HERE / filler
    try:
        with open(path, "wb") as handle:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
    except OSError as exc:
        log.warning("filled: %s", exc)
    started = time.monotonic()
    for i in range(count):
        log.info("line %d", i)
    took = time.monotonic() - started
    if free:
        path.unlink()
    return {"logging_took": took}


def waits_for(started: str, go: str) -> str:
    """Writes ``started`` (beside this module), waits for ``go`` to appear, logs, returns."""
    (HERE / started).write_text(str(os.getpid()))
    while not (HERE / go).exists():
        time.sleep(0.02)
    log.info("going")
    return "went"


def spawner(seconds: float = 60, marker: str = "spawner.pids") -> str:
    """Starts ``sleep 600`` (a subprocess of the job's), writes its own pid and the
    subprocess's to ``marker`` (beside this module), then sleeps ``seconds``."""
    import subprocess

    child = subprocess.Popen(["sleep", "600"])
    (HERE / marker).write_text(f"{os.getpid()} {child.pid}")
    log.info("spawned %s", child.pid)
    time.sleep(seconds)
    return "spawned"


#: what a hostile job writes to take over a terminal: OSC 52 (clipboard), OSC 0 (window
#: title), clear screen, hidden text, an 8-bit CSI, a bidi override, a carriage return
TERMINAL_ATTACK = ("clip\x1b]52;c;cHduZWQ=\x07 title\x1b]0;pwned\x07 clear\x1b[2J "
                   "hide\x1b[8mhidden\x1b[0m csi\x9b31m bidi\u202eevil\u202c cr\rover")


def terminal_attack(fail: bool = False) -> dict:
    """Job text with escape sequences everywhere: \x1b]0;docstring\x07 too."""
    log.warning("log %s", TERMINAL_ATTACK)
    print(f"print {TERMINAL_ATTACK}")
    progress(1, 2, f"progress {TERMINAL_ATTACK}")
    log.info("after progress")
    if fail:
        raise RuntimeError(f"raise {TERMINAL_ATTACK}")
    return {"text": TERMINAL_ATTACK}


class Holder:
    """Not JSON: a return value kept as its repr."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Holder({self.value!r})"


def leaks_forms(value: str, fail: bool = False) -> object:
    """Writes a secret in the forms it takes in practice: repr, JSON, bytes, base64 (whole
    and inside longer bytes), URL-encoded, hex; logs, prints, reports, returns or raises."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    data = value.encode()
    log.info("connecting with %r", value)
    log.info("config %r", {"dsn": value})  # the repr of a dict: quotes chosen for the dict
    print(json.dumps({"value": value}))
    print(f"bytes {data!r}")
    progress(1, 2, f"using {value!r}")
    forms = {
        "repr": repr(value), "json": json.dumps(value), "bytes": data,
        "b64": base64.b64encode(data).decode(), "b64url": base64.urlsafe_b64encode(data).decode(),
        "b64_bare": base64.b64encode(data).decode().rstrip("="),
        "inside": [base64.b64encode(b"x" * n + data + b"yz").decode() for n in range(3)],
        "inside_bytes": [b"x" * n + data + b"yz" for n in range(3)],
        "quote": quote(value, safe=""), "quote_plus": quote_plus(value), "hex": data.hex(),
    }
    if fail:
        raise ConnectionError(f"refused {value!r} {forms['b64']} {forms['quote']}")
    return forms


def leaks_repr(value: str) -> object:
    """Returns a value that is not JSON: stored as its repr."""
    return Holder(value)


def leaks_at_cut(value: str) -> None:
    """Logs and raises a message too long to keep whole, with the secret across each of
    the places where it is cut (the middle of the stored text is left out)."""
    from jobcontrol.serialize import MAX_MESSAGE

    half = MAX_MESSAGE // 2
    # the head kept ends 5 characters into the first, the tail kept starts 5 before the
    # end of the second
    message = "x" * (half - 5) + value + "y" * MAX_MESSAGE + value + "z" * (half - len(value) + 5)
    log.info("%s", message)
    raise ValueError(message)


class RawRepr:
    """Not JSON, with a repr that is not escaped: the job's text, as it wrote it."""

    def __repr__(self) -> str:
        return f"RawRepr({TERMINAL_ATTACK})"


def returns_raw_repr() -> object:
    return RawRepr()


def quiets_root(level: str = "WARNING") -> str:
    """Sets the root logger's level, as a job calling ``logging.basicConfig`` may."""
    logging.getLogger().setLevel(level)
    return level


def writes_to_fds(fail: bool = False) -> None:
    """Writes to file descriptors 1 and 2 itself and through a child process, as C code
    and subprocesses do (nothing through ``sys.stdout``)."""
    import subprocess

    os.write(1, b"fd 1 line\n")
    os.write(2, b"fd 2 line\n")
    subprocess.run(["sh", "-c", "echo child out; echo child err >&2"], check=True)
    if fail:
        raise RuntimeError("failed after writing")
