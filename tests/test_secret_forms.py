"""A secret holding quotes, a backslash and base64's own characters, written by a job in
the forms it takes in practice (``%r``, JSON, bytes, base64 whole and inside longer bytes,
URL-encoded, hex), is stored in none of them (SQLite file bytes, every PostgreSQL column)
and shown in none of them (CLI text and JSON, web pages and API)."""

from __future__ import annotations

import ast
import base64
import html
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from jobcontrol.core import JobControl
from jobcontrol.secrets import Masker
from jobcontrol.web import create_app
from tests.pgdb import query
from tests.processes import Project

SECRET = "p@ss'w\"o\\rd/+="
ENV = {"JC_FORMS_SECRET": SECRET}

CONFIG = """\
secrets: [!env JC_FORMS_SECRET]
jobs:
  - id: forms
    function: jobfuncs.leaks_forms
    kwargs: {value: !env JC_FORMS_SECRET}
  - id: forms_fail
    function: jobfuncs.leaks_forms
    kwargs: {value: !env JC_FORMS_SECRET, fail: true}
  - id: forms_repr
    function: jobfuncs.leaks_repr
    args: [!env JC_FORMS_SECRET]
"""


def leaked_forms() -> set[str]:
    """What the job writes, as the test knows it (not as the masker does): each written
    form, and each again as a JSON string holds it (how a stored value keeps it)."""
    data = SECRET.encode()
    written = {
        SECRET, repr(SECRET)[1:-1], repr({"dsn": SECRET})[9:-2], json.dumps(SECRET)[1:-1],
        repr(data)[2:-1], base64.b64encode(data).decode(),
        base64.urlsafe_b64encode(data).decode().rstrip("="), quote(SECRET, safe=""),
        quote_plus(SECRET), data.hex(),
    }
    # inside longer bytes, at each alignment: the characters only the secret decides
    written |= {base64.b64encode(b"x" * n + data + b"yz").decode()[4:16] for n in range(3)}
    return written | {json.dumps(form)[1:-1] for form in written}


def assert_no_secret(text: str, where: str) -> None:
    found = [form for form in leaked_forms() if form in text]
    assert not found, f"the secret is in {where} as {found}"


def stored_text(project: Project, function: str = "leaks_forms") -> str:
    """Everything the storage holds: the SQLite files' bytes, or every column of every
    row of every PostgreSQL table, as text."""
    if project.storage is None:
        files = sorted(project.config.parent.glob("jobcontrol.db*"))  # -wal and -shm too
        return b"".join(path.read_bytes() for path in files).decode("utf-8", "replace")
    values = []
    columns = query(project.storage,
                    "SELECT table_schema, table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")
    assert columns
    for schema, table, column in columns:
        rows = query(project.storage, f'SELECT "{column}"::text FROM "{schema}"."{table}"')
        values += [row[0] for row in rows if row[0] is not None]
    assert any(function in value for value in values)
    return "\n".join(values)


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project.on(request, tmp_path, CONFIG)


def test_a_secret_is_masked_in_every_form(project: Project, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    outputs = []
    for job, expected in (("forms", 0), ("forms_fail", 1), ("forms_repr", 0)):
        code, out, err = project.run("build", job, env=ENV)
        assert code == expected, err
        outputs.append(out + err)
    for args in (["show", "1"], ["show", "2"], ["show", "3"], ["logs", "1"], ["logs", "2"],
                 ["builds"], ["jobs"], ["config"]):
        for fmt in ([], ["--format", "json"]):
            code, out, err = project.run(*args, *fmt, env=ENV)
            assert code == 0, err
            outputs.append(out + err)
    shown = "\n".join(outputs)
    assert "connecting with ***" in shown or "connecting with '***'" in shown
    assert '{"value": "***"}' in shown  # the printed JSON, masked
    assert "Holder(" in shown and "ConnectionError" in shown
    assert_no_secret(shown, "the CLI's output")

    code, out, err = project.run("show", "1", "--format", "json", env=ENV)
    retval = json.loads(out)["retval"]
    assert retval["quote"] == "***" and retval["hex"] == "***" and retval["b64"] == "***"
    assert base64.b64decode(retval["bytes"]) == b"***"  # bytes: masked before base64

    assert_no_secret(stored_text(project), "the storage")

    monkeypatch.setenv("JC_FORMS_SECRET", SECRET)
    jc = JobControl.from_config(project.config, project.storage_url)
    try:
        client = create_app(jc).test_client()
        pages = []
        for url in ("/builds/1", "/builds/2", "/builds/3", "/jobs/forms",
                    "/api/v1/builds/1", "/api/v1/builds/2", "/api/v1/builds/3",
                    "/api/v1/builds/1/logs", "/api/v1/builds/2/logs",
                    "/api/v1/builds/1/progress", "/api/v1/jobs/forms"):
            response = client.get(url)
            assert response.status_code == 200, url
            pages.append(html.unescape(response.get_data(as_text=True)))
        assert_no_secret("\n".join(pages), "the web UI")
    finally:
        jc.close()


@pytest.mark.parametrize("secret", ["it's-a-secret", 'say "hi" now', "back\\slash\ttab",
                                    "naïve-sécret", "x'y\"z\\w\n"])
def test_each_escaped_form_decodes_to_a_masked_value(secret: str) -> None:
    """Masked, each form still decodes (a repr, JSON), and to text without the secret."""
    masker = Masker([secret])
    for text in (repr(secret), repr([secret, "'\""]), ascii(secret), ascii({"k": secret}),
                 repr(secret.encode()), repr([secret.encode(), b"'\""])):
        masked = masker.text(text)
        decoded = ast.literal_eval(masked)
        assert "***" in masked and secret not in repr(decoded), text
        assert secret.encode() not in repr(decoded).encode()
    for text in (json.dumps(secret), json.dumps([secret]), json.dumps(secret, ensure_ascii=False)):
        assert "***" in json.loads(masker.text(text)), text
    value = masker.value({secret: {secret}, "k": frozenset([secret]), "b": bytearray(
        b"<" + secret.encode() + b">"), "t": (secret,)})
    assert value == {"***": {"***"}, "k": frozenset(["***"]), "b": bytearray(b"<***>"),
                     "t": ("***",)}


def test_a_secret_across_the_cut_of_a_long_message_is_masked_whole(
        project: Project) -> None:
    with project.config.open("a") as config:
        config.write("  - id: cut\n    function: jobfuncs.leaks_at_cut\n"
                     "    args: [!env JC_FORMS_SECRET]\n")
    code, _, err = project.run("build", "cut", env=ENV)
    assert code == 1, err
    stored = stored_text(project, "leaks_at_cut")
    assert "characters cut]" in stored and "x***" in stored and "***z" in stored
    for piece in (SECRET[:5], SECRET[-5:]):  # what a cut after masking would leave
        assert piece not in stored and json.dumps(piece)[1:-1] not in stored
