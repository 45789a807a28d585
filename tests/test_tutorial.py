"""The tutorial (docs/tutorial.rst) is run as a reader would run it, in a fresh folder.

Each ``.. code-block::`` with a ``:caption:`` is a file the reader writes (the caption is
its name); each ``console`` block holds commands (``$ `` lines) and their expected output
(the lines after each): ``...`` stands for any text within a line, a line of only ``...``
for any lines, ``<BLANKLINE>`` for an empty one. A command exits 0 unless it says
``# exits N``; one that says ``# runs until Ctrl-C`` is a server: it is started, its first
line checked, the URL in it fetched, and it is stopped.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.rst"
BLOCK = re.compile(r"^\.\. code-block:: (\S+)\n((?:[ \t]+:\w+:.*\n)*)\n((?:[ \t]+.*\n|\n)+)",
                   re.M)


@dataclass
class File:
    name: str
    text: str


@dataclass
class Command:
    line: str
    expected: list[str]
    exit_code: int = 0
    server: bool = False


def steps(rst: str) -> list[File | Command]:
    """The files and commands of the tutorial, in order."""
    found: list[File | Command] = []
    for match in BLOCK.finditer(rst):
        language, options, body = match.groups()
        text = textwrap.dedent(body).strip("\n") + "\n"
        caption = re.search(r":caption: (\S+)", options)
        if caption:
            found.append(File(caption.group(1), text))
        elif language == "console":
            for line in text.splitlines():
                if line.startswith("$ "):
                    code = re.search(r"# exits (\d+)", line)
                    found.append(Command(line[2:], [], int(code.group(1)) if code else 0,
                                         "# runs until Ctrl-C" in line))
                else:
                    command = found[-1]
                    assert isinstance(command, Command), f"output before a command: {line}"
                    command.expected.append(line)
    return found


def pattern(expected: list[str]) -> re.Pattern[str]:
    parts = []
    for line in expected:
        if line == "...":
            parts.append(r"(?:.*\n)*?")
        elif line == "<BLANKLINE>":
            parts.append(r"\n")
        else:
            parts.append(".*".join(map(re.escape, line.split("..."))) + r"\n")
    return re.compile("".join(parts))


def environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    # the installed command, importing this checkout
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_server(command: Command, folder: Path, env: dict[str, str]) -> None:
    port = free_port()
    line = re.sub(r"--port \d+", f"--port {port}", command.line)
    expected = [re.sub(r":\d+/", f":{port}/", text) for text in command.expected]
    process = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=folder, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert pattern(expected[:1]).fullmatch(first), (line, first)
        url = re.search(r"http://\S+/", first)
        assert url, first
        with urllib.request.urlopen(url.group(0), timeout=10) as response:
            page = response.read().decode()
        assert response.status == 200
        assert "report" in page and "clean" in page
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    env = environment(tmp_path)
    todo = steps(TUTORIAL.read_text())
    assert sum(isinstance(step, Command) for step in todo) >= 10
    for step in todo:
        if isinstance(step, File):
            (tmp_path / step.name).write_text(step.text)
            continue
        if step.server:
            run_server(step, tmp_path, env)
            continue
        result = subprocess.run(["bash", "-c", step.line], cwd=tmp_path, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        output = "".join(f"{line.rstrip()}\n" for line in result.stdout.splitlines())
        assert result.returncode == step.exit_code, (step.line, output)
        assert pattern(step.expected).fullmatch(output), (
            f"$ {step.line}\n--- expected:\n" + "\n".join(step.expected)
            + f"\n--- got:\n{output}")


def test_steps_reads_files_commands_and_outputs() -> None:
    rst = textwrap.dedent("""\
        .. code-block:: python
            :caption: a.py

            x = 1

        .. code-block:: console

            $ cat a.py  # exits 0
            x = 1
            $ false  # exits 1
        """)
    assert steps(rst) == [File("a.py", "x = 1\n"), Command("cat a.py  # exits 0", ["x = 1"]),
                          Command("false  # exits 1", [], 1)]
    assert pattern(["a ... c", "...", "z"]).fullmatch("a b c\nx\ny\nz\n")
    assert not pattern(["a ... c"]).fullmatch("a b\nc\n")
