"""Parsers of the config's settings sections (``runner:``, ``web:``, ``executor:``,
``secrets:``): raw YAML value (with marks) → the keyword arguments of
:mod:`~jobcontrol.config.settings`' dataclasses, with located errors as
:mod:`~jobcontrol.config.values` gives them."""

from __future__ import annotations

import re
from typing import Any

from jobcontrol.config.values import (
    Field,
    choice,
    duration,
    queue_name,
    string_list,
    sub_mapping,
    type_name,
    whole_number,
)
from jobcontrol.config.yaml_loader import MarkedDict, MarkedList
from jobcontrol.timeutil import format_duration

RUNNER_KEYS = ("heartbeat", "heartbeat_timeout", "kill_grace", "outcome_retry",
               "max_builds_per_worker", "max_worker_memory")
#: the runner keys that are not durations
_RUNNER_OTHER_KEYS = ("max_builds_per_worker", "max_worker_memory")
#: runner keys of earlier versions, and what to do instead: a config that still says one
#: is refused (a setting silently ignored would let its file claim what no longer happens)
REMOVED_RUNNER_KEYS = {
    "fork_server": "with the fork server: delete it (warm, reused build processes are "
                   "isolation: pool, the default)",
}
WEB_KEYS = ("secret_key", "auth", "allowed_hosts", "proxy", "session_lifetime")
WEB_AUTH_KEYS = ("users", "token")
#: ``web: proxy:`` keys: how many proxies in front set each ``X-Forwarded-*`` header
#: (Werkzeug's ``ProxyFix`` arguments)
WEB_PROXY_KEYS = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")
#: a host name as a ``Host`` header names it, without the port: a name, IPv4, or [IPv6]
HOST_NAME = re.compile(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]")
#: shortest ``secret_key`` and ``token`` accepted: a short one is guessable
MIN_SECRET_LENGTH = 16
#: the methods Werkzeug's ``generate_password_hash`` writes (``method$salt$hash``)
PASSWORD_HASH_METHODS = ("scrypt", "pbkdf2")
EXECUTOR_KEYS = ("type", "broker", "queue", "timeout", "transport_options", "queued_timeout")
EXECUTOR_TYPES = ("local", "celery")
#: broker URL schemes Celery speaks that jobcontrol's tests cover (Redis, RabbitMQ)
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


def runner_settings(value: Any, at: Field) -> dict[str, Any]:
    """The ``runner:`` mapping → keyword arguments of RunnerSettings (defaults left out)."""
    if value is None:
        return {}
    for key in value if isinstance(value, dict) else ():
        if key in REMOVED_RUNNER_KEYS:
            pos = value.key_marks.get(key) if isinstance(value, MarkedDict) else None
            owner = f"{at.owner}: {at.key}" if at.owner else at.key
            raise Field(at.file, owner, "", pos or at.pos).error(
                f"key {key!r} was removed {REMOVED_RUNNER_KEYS[key]}")
    sub_mapping(value, at, RUNNER_KEYS, "{heartbeat: 5s, heartbeat_timeout: 60s}")
    settings: dict[str, Any] = {
        key: duration(value[key], at.inner(value, key), zero=key in ("kill_grace", "outcome_retry"))
        for key in RUNNER_KEYS
        if key in value and key not in _RUNNER_OTHER_KEYS
    }
    if "max_builds_per_worker" in value:
        settings["max_builds_per_worker"] = whole_number(
            value["max_builds_per_worker"], at.inner(value, "max_builds_per_worker"), 1)
    if "max_worker_memory" in value:
        settings["max_worker_memory"] = byte_size(value["max_worker_memory"],
                                                  at.inner(value, "max_worker_memory"))
    beat = settings.get("heartbeat", 5.0)
    limit = settings.get("heartbeat_timeout", 60.0)
    if limit <= beat:
        culprit = "heartbeat_timeout" if "heartbeat_timeout" in value else "heartbeat"

        def shown(key: str, seconds: float) -> str:
            return format_duration(seconds) + ("" if key in value else ", the default")

        raise at.inner(value, culprit).error(
            f"heartbeat_timeout ({shown('heartbeat_timeout', limit)}) must be more than "
            f"heartbeat ({shown('heartbeat', beat)})"
        )
    return settings


#: the units a size may be written in (``200MB``, ``1.5GiB``), in bytes
SIZE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KIB": 1024,
              "MIB": 1024**2, "GIB": 1024**3}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*\Z")


def byte_size(value: Any, at: Field) -> int | None:
    """A size in bytes from ``200MB``, ``1.5GiB``, ``512KB`` or a number of bytes; null: no
    limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise at.wrong_type(value, "a size such as 200MB, or null for no limit")
    match = _SIZE.match(str(value))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in SIZE_UNITS:
        raise at.error(f"bad {at.key} {value!r}: use a size such as 200MB (units: B, KB, "
                       f"MB, GB, KiB, MiB, GiB)")
    size = int(float(match.group(1)) * SIZE_UNITS[unit])
    if size <= 0:
        raise at.error(f"{at.key} must be more than 0 (use null for no limit)")
    return size


def executor_settings(value: Any, at: Field) -> dict[str, Any]:
    """The ``executor:`` mapping → keyword arguments of ExecutorSettings (defaults left out)."""
    if value is None:
        return {}
    sub_mapping(value, at, EXECUTOR_KEYS, "{type: celery, broker: redis://127.0.0.1:6379/0}")
    if "type" not in value:
        raise at.error(f"{at.key} needs a type: {' or '.join(EXECUTOR_TYPES)}")
    kind = choice(EXECUTOR_TYPES)(value["type"], at.inner(value, "type"))
    settings: dict[str, Any] = {"type": kind}
    if kind == "local":
        for key in EXECUTOR_KEYS[1:]:
            if key in value:
                raise at.inner(value, key).error(f"{key} is only for type: celery")
        return settings
    if "broker" not in value:
        raise at.error(f"{at.key} of type celery needs a broker, e.g. "
                       f"broker: redis://127.0.0.1:6379/0 or amqp://guest@127.0.0.1//")
    broker, where = value["broker"], at.inner(value, "broker")
    if not isinstance(broker, str):
        raise where.wrong_type(broker, "a URL such as redis://127.0.0.1:6379/0")
    scheme = broker.partition("://")[0] if "://" in broker else ""
    if scheme not in BROKER_SCHEMES:
        raise where.error(
            f"broker must be a redis:// or amqp:// URL, got one starting {scheme or broker[:20]!r}"
            f" (supported: {', '.join(s + '://' for s in BROKER_SCHEMES)})"
        )
    settings["broker"] = broker
    queue = queue_name(value.get("queue"), at.inner(value, "queue"))
    if queue is not None:
        settings["queue"] = queue
    if "timeout" in value:
        settings["timeout"] = duration(value["timeout"], at.inner(value, "timeout"),
                                       zero=False)
    if "queued_timeout" in value:
        settings["queued_timeout"] = duration(
            value["queued_timeout"], at.inner(value, "queued_timeout"), zero=False)
    if "transport_options" in value:
        settings["transport_options"] = _transport_options(
            value["transport_options"], at.inner(value, "transport_options"))
    return settings


def _transport_options(value: Any, at: Field) -> dict[str, Any]:
    """``executor.transport_options``: Celery's ``broker_transport_options``, passed on as
    they are, but for durations (a key ending ``_timeout`` or ``_interval``: ``1h`` or
    3600), which become seconds."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise at.wrong_type(value, "a mapping such as {visibility_timeout: 1h}")
    options: dict[str, Any] = {}
    for key, item in value.items():
        where = at.inner(value, key)
        if not isinstance(key, str):
            raise where.error(f"option names must be strings, got {type_name(key)}")
        if key.endswith(("_timeout", "_interval")) and item is not None:
            options[key] = duration(item, where)
        elif isinstance(item, (str, int, float, bool)) or item is None:
            options[key] = item
        elif isinstance(item, list) and all(isinstance(x, (str, int, float)) for x in item):
            options[key] = list(item)
        else:
            raise where.wrong_type(item, "a string, a number, a boolean or a list of them")
    return options


def secret_list(value: Any, at: Field) -> set[str]:
    """``secrets: [literal, !env NAME]``. Messages never quote a value: they are secrets."""
    if value is None:
        return set()
    if not isinstance(value, list):
        raise at.wrong_type(value, "a list of strings (e.g. [!env DB_PASSWORD])")
    marks = value.item_marks if isinstance(value, MarkedList) else []
    found = set()
    for index, item in enumerate(value):
        if not isinstance(item, str):
            hint = " (quote it)" if isinstance(item, (int, float)) else ""
            pos = marks[index] if index < len(marks) else None
            raise at.error(f"each of {at.key} must be a string, got {type_name(item)}{hint}", pos)
        if item:
            found.add(item)
    return found


def web_settings(value: Any, at: Field) -> dict[str, Any]:
    """``web: {secret_key, allowed_hosts, proxy, session_lifetime, auth: {users: {name:
    hash}, token}}`` → WebSettings keywords.

    Messages never quote a key, token or hash: they are secrets.
    """
    if value is None:
        return {}
    sub_mapping(value, at, WEB_KEYS, "{auth: {users: {alice: 'scrypt:...'}}}")
    settings: dict[str, Any] = {}
    if value.get("secret_key") is not None:
        settings["secret_key"] = _secret_text(value["secret_key"], at.inner(value, "secret_key"))
    if value.get("allowed_hosts") is not None:
        settings["allowed_hosts"] = _host_names(value["allowed_hosts"],
                                                at.inner(value, "allowed_hosts"))
    if value.get("proxy") is not None:
        settings["proxy"] = _proxy(value["proxy"], at.inner(value, "proxy"))
    if value.get("session_lifetime") is not None:
        settings["session_lifetime"] = duration(value["session_lifetime"],
                                                at.inner(value, "session_lifetime"), zero=False)
    auth = value.get("auth")
    if auth is None:
        return settings
    at = at.inner(value, "auth")
    sub_mapping(auth, at, WEB_AUTH_KEYS, "{users: {alice: 'scrypt:...'}} or {token: !env T}")
    if auth.get("token") is not None:
        settings["token"] = _secret_text(auth["token"], at.inner(auth, "token"))
    users = auth.get("users")
    if users is not None:
        settings["users"] = _password_hashes(users, at.inner(auth, "users"))
    return settings


def _host_names(value: Any, at: Field) -> tuple[str, ...]:
    names, positions = string_list("host name")(value, at)
    for name in names:
        if not HOST_NAME.fullmatch(name):
            raise at.error(f"each of {at.key} must be a host name as browsers send it (lower "
                           f"case, no scheme or port, e.g. jobs.example.com or 192.0.2.7), "
                           f"got {name!r}", positions[name])
    return names


def _proxy(value: Any, at: Field) -> dict[str, int]:
    sub_mapping(value, at, WEB_PROXY_KEYS, "{x_for: 1, x_proto: 1}")
    # every key, 0 unless given: ProxyFix's own defaults would trust X-Forwarded-For
    return {key: whole_number(value[key], at.inner(value, key), 0) if key in value else 0
            for key in WEB_PROXY_KEYS}


def _secret_text(value: Any, at: Field) -> str:
    if not isinstance(value, str):
        raise at.wrong_type(value, "a string (e.g. !env NAME)")
    if len(value) < MIN_SECRET_LENGTH:
        raise at.error(f"{at.key} is too short: use at least {MIN_SECRET_LENGTH} random "
                       f"characters (python -c 'import secrets; print(secrets.token_hex())')")
    return value


def _password_hashes(value: Any, at: Field) -> dict[str, str]:
    if not isinstance(value, dict):
        raise at.wrong_type(value, "a mapping of user name to password hash")
    users = {}
    for name, hashed in value.items():
        pos = value.value_marks.get(name) if isinstance(value, MarkedDict) else None
        if not isinstance(name, str) or not name or ":" in name:
            key_pos = value.key_marks.get(name) if isinstance(value, MarkedDict) else None
            raise at.error(f"a user name must be a non-empty string without ':', "
                           f"got {type_name(name)}", key_pos or pos)
        method = hashed.split(":", 1)[0] if isinstance(hashed, str) else ""
        if method not in PASSWORD_HASH_METHODS or hashed.count("$") != 2:
            raise at.error(
                f"the password of user {name!r} must be a hash made by werkzeug.security."
                f"generate_password_hash (python -c \"from werkzeug.security import "
                f"generate_password_hash as h; print(h(input()))\"), never the password itself",
                pos,
            )
        users[name] = hashed
    return users
