"""The ``web:`` config section: what it accepts, and each mistake located by file:line."""

from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash

from jobcontrol.config import parse_config
from jobcontrol.errors import ConfigError

HASH = generate_password_hash("pw", method="pbkdf2:sha256:1000")


def test_web_settings_are_loaded_and_kept_secret() -> None:
    config = parse_config(
        f"web:\n  secret_key: s3cret-s3cret-s3cret\n  auth:\n    users: {{alice: '{HASH}'}}\n"
        f"    token: t0ken-t0ken-t0ken-t0ken\njobs: []\n", "jobs.yaml")
    assert config.web.secret_key == "s3cret-s3cret-s3cret"
    assert config.web.users == {"alice": HASH}
    assert config.web.token == "t0ken-t0ken-t0ken-t0ken" and config.web.auth
    assert {"s3cret-s3cret-s3cret", "t0ken-t0ken-t0ken-t0ken"} <= config.secrets
    assert "s3cret" not in repr(config.web) and HASH not in repr(config.web)
    assert not parse_config("jobs: []\n", "jobs.yaml").web.auth


def test_web_hosts_proxy_and_session_lifetime() -> None:
    web = parse_config("web:\n  allowed_hosts: [jobs.example.com, 192.0.2.7, '[::1]']\n"
                       "  proxy: {x_for: 1, x_proto: 1}\n  session_lifetime: 2h\njobs: []\n",
                       "jobs.yaml").web
    assert web.allowed_hosts == ("jobs.example.com", "192.0.2.7", "[::1]")
    assert web.proxy == {"x_for": 1, "x_proto": 1, "x_host": 0, "x_port": 0, "x_prefix": 0}
    assert web.session_lifetime == 7200
    default = parse_config("jobs: []\n", "jobs.yaml").web
    assert (default.allowed_hosts, default.proxy, default.session_lifetime) == ((), {}, 43200)


@pytest.mark.parametrize(("text", "line", "column", "message"), [
    ("web: {secret: x}\n", 1, 7, "web: unknown key 'secret' (did you mean 'secret_key'?)"),
    ("web: [1]\n", 1, 6, "web must be a mapping such as"),
    ("web: {secret_key: short}\n", 1, 19, "secret_key is too short: use at least 16"),
    ("web: {secret_key: 12}\n", 1, 19, "secret_key must be a string"),
    ("web:\n  auth: {tokn: x}\n", 2, 10, "web: auth: unknown key 'tokn' (did you mean 'token'?)"),
    ("web:\n  auth: {token: abc}\n", 2, 17, "token is too short"),
    ("web:\n  auth:\n    users: {alice: hunter2}\n", 3, 20,
     "the password of user 'alice' must be a hash made by werkzeug.security"),
    ("web:\n  auth:\n    users: [alice]\n", 3, 12, "users must be a mapping of user name"),
    ("web: {auth: {users: {'a:b': 'pbkdf2:x$y$z'}}}\n", 1, 22,
     "a user name must be a non-empty string without ':'"),
    ("web:\n  allowed_hosts: [ok.example, 'Jobs.example:80']\n", 2, 31,
     "each of allowed_hosts must be a host name as browsers send it"),
    ("web: {allowed_hosts: jobs.example}\n", 1, 22, "allowed_hosts must be a list"),
    ("web: {proxy: {x_forr: 1}}\n", 1, 15, "web: proxy: unknown key 'x_forr' (did you mean"),
    ("web: {proxy: {x_proto: -1}}\n", 1, 24, "x_proto must be at least 0"),
    ("web: {proxy: 1}\n", 1, 14, "proxy must be a mapping such as {x_for: 1, x_proto: 1}"),
    ("web: {session_lifetime: 0}\n", 1, 25, "session_lifetime must be more than 0"),
])
def test_web_mistakes_are_located(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text + "jobs: []\n", "jobs.yaml")
    error = caught.value
    assert message in error.message, error.message
    assert (error.file, error.line, error.column) == ("jobs.yaml", line, column)
    assert "hunter2" not in str(error)
