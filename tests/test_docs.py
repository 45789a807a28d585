"""The docs cannot drift: the Sphinx site builds with warnings as errors and its doctests
pass; the command reference (generated from the click commands) shows every command and
option; the exit-code table is generated from ExitCode; every config key and storage URL
scheme is in docs/reference/; the README is valid reStructuredText, short, and its quick
start holds exactly the two commands CI runs."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from jobcontrol.cli import main
from jobcontrol.config.validation import DEFAULT_KEYS, JOB_KEYS, TOP_KEYS
from jobcontrol.errors import ExitCode
from jobcontrol.storage import BACKENDS

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.rst").read_text()
REFERENCE = "\n".join(p.read_text() for p in sorted((DOCS / "reference").glob("*.rst")))


def sphinx(builder: str, out: Path) -> subprocess.CompletedProcess[str]:
    """sphinx-build -W -n (warnings are errors, every reference must resolve), offline."""
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", builder,
         "-d", str(out / "doctrees"), str(DOCS), str(out / builder)],
        cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    result = sphinx("html", out)
    assert result.returncode == 0, result.stdout
    return out / "html"


def text_of(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_the_site_builds_without_a_warning(site: Path) -> None:
    for page in ("index", "tutorial", "howto/celery", "reference/commands",
                 "reference/python-api", "explanation/when-things-die", "changelog"):
        assert (site / f"{page}.html").is_file(), page


def test_the_doctests_pass(tmp_path: Path) -> None:
    result = sphinx("doctest", tmp_path)
    assert result.returncode == 0, result.stdout
    summary = (tmp_path / "doctest" / "output.txt").read_text()
    tests = re.search(r"^\s*(\d+) tests", summary, flags=re.M)
    assert tests and int(tests.group(1)) >= 3, summary
    assert "0 failures in tests" in summary


@pytest.mark.parametrize("name", sorted(main.list_commands(click.Context(main))))
def test_every_command_and_option_is_in_the_reference(site: Path, name: str) -> None:
    page = (site / "reference" / "commands.html").read_text()
    command = main.get_command(click.Context(main), name)
    assert command is not None
    assert f'id="jobcontrol-{name}"' in page, f"command {name} is not in the reference"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            for opt in param.opts:
                anchor = f'id="cmdoption-jobcontrol-{name}-{opt.lstrip("-")}"'
                assert anchor in page, f"{name} {opt} is not in the reference"


def test_the_generated_help_shows_no_markup(site: Path) -> None:
    # the help texts are plain text (tests/test_cli_messages.py); rendered as reST they
    # must not come out with stray markup characters or system messages
    text = text_of(site / "reference" / "commands.html")
    assert "System Message" not in text and "``" not in text


def test_the_exit_code_table_is_exit_code(site: Path) -> None:
    source = (DOCS / "reference" / "exit-codes.rst").read_text()
    assert ".. jobcontrol-exit-codes::" in source
    text = " ".join(text_of(site / "reference" / "exit-codes.html").split())
    for code in ExitCode:
        assert f"{code.value} {code.name} {code.meaning}" in text, code


@pytest.mark.parametrize("key", sorted(set(JOB_KEYS) | set(TOP_KEYS) | set(DEFAULT_KEYS)))
def test_every_config_key_is_in_the_reference(key: str) -> None:
    assert f"``{key}``" in (DOCS / "reference" / "config.rst").read_text(), key


@pytest.mark.parametrize("scheme", sorted(BACKENDS))
def test_every_storage_url_scheme_is_in_the_reference(scheme: str) -> None:
    assert f"``{scheme}://" in (DOCS / "reference" / "storage.rst").read_text(), scheme


def test_every_json_shape_is_in_the_reference() -> None:
    for command in ("status", "builds", "show", "logs", "prune"):
        assert f"``{command}" in REFERENCE.split("JSON shapes", 1)[1], command


def test_the_explanation_toctree_takes_every_page() -> None:
    # pages added later (architecture, threat model) need no edit of the index
    assert "   :glob:\n\n   explanation/*" in (DOCS / "index.rst").read_text()


def test_readme_is_valid_restructuredtext() -> None:
    # it is the package's long description: a warning would break its rendering
    result = subprocess.run([sys.executable, "-m", "docutils", "--halt=warning",
                             str(ROOT / "README.rst"), "/dev/null"],
                            text=True, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_readme_is_a_door() -> None:
    assert len(README.splitlines()) <= 200
    for target in re.findall(r"<((?:docs|benchmarks)/[^>]+|LICENSE|CHANGELOG\.rst)>`_", README):
        assert (ROOT / target).is_file(), target


def test_quick_start_has_exactly_two_commands() -> None:
    section = README.split("Quick start\n===========")[1].split("\n=====")[0]
    commands = re.findall(r"^\s+\$ (.+)$", section, flags=re.M)
    assert len(commands) == 2
    assert "pip install" in commands[0] and "build" in commands[0]
    assert "pip install" in commands[1] and "pytest" in commands[1]
    # .ci/run takes the second "$ " line of the whole file: it must be this one
    assert re.findall(r"^\s+\$ (.+)$", README, flags=re.M)[:2] == commands
