"""Parsers of the scheduling keys of a job: ``schedule``, ``timezone``,
``schedule_options``, ``max_age`` and ``notify`` (see :mod:`jobcontrol.config.values`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from jobcontrol.config.values import Field, duration, sub_mapping, type_name
from jobcontrol.config.yaml_loader import MarkedDict, MarkedList
from jobcontrol.importing import FUNCTION_SYNTAX, parse_function_path
from jobcontrol.notify import NOTIFY_EVENTS, TARGET_KINDS, NotifyPolicy, NotifyTarget
from jobcontrol.schedule import CATCHUP_POLICIES, ScheduleOptions, cron_problem, timezone_problem

SCHEDULE_OPTION_KEYS = ("deps", "if_outdated", "catchup", "misfire_grace")
NOTIFY_KEYS = ("on", "targets")
#: the keys a target may have besides its kind
TARGET_OPTIONS = {"call": (), "webhook": (), "email": ("smtp", "from")}


def schedule(value: Any, at: Field) -> str | None:
    """``"0 * * * *"``, ``@daily``, or 6 fields with seconds last; null: not scheduled."""
    if value is None:
        return None
    problem = cron_problem(value)
    if problem:
        raise at.error(problem)
    return str(value)


def timezone_name(value: Any, at: Field) -> str:
    problem = timezone_problem(value)
    if problem:
        raise at.error(problem)
    return str(value)


def schedule_options(value: Any, at: Field) -> ScheduleOptions:
    """``{deps: true, if_outdated: false, catchup: latest, misfire_grace: 5m}``."""
    if value is None:
        return ScheduleOptions()
    sub_mapping(value, at, SCHEDULE_OPTION_KEYS, "{catchup: latest, misfire_grace: 5m}")
    options: dict[str, Any] = {}
    for key in ("deps", "if_outdated"):
        if key in value:
            if not isinstance(value[key], bool):
                raise at.inner(value, key).wrong_type(value[key], "true or false")
            options[key] = value[key]
    if "catchup" in value:
        catchup = value["catchup"]
        if catchup not in CATCHUP_POLICIES or not isinstance(catchup, str):
            shown = repr(catchup) if isinstance(catchup, str) else type_name(catchup)
            raise at.inner(value, "catchup").error(
                f"catchup must be {', '.join(CATCHUP_POLICIES)}, got {shown}")
        options["catchup"] = catchup
    if "misfire_grace" in value:
        options["misfire_grace"] = duration(value["misfire_grace"],
                                            at.inner(value, "misfire_grace"))
    return ScheduleOptions(**options)


def max_age(value: Any, at: Field) -> float | None:
    """``26h``: the job is stale when its last success is older. Null: never stale."""
    if value is None:
        return None
    return duration(value, at, zero=False, null="no limit")


def notify(value: Any, at: Field) -> NotifyPolicy | None:
    """``{on: [failure, recovery], targets: [{webhook: URL}, {call: m.f}, {email: [a]}]}``."""
    if value is None:
        return None
    value = _on_key(value)
    sub_mapping(value, at, NOTIFY_KEYS, "{on: [failure], targets: [{webhook: URL}]}")
    on: tuple[str, ...] = NOTIFY_EVENTS
    if "on" in value:
        on = _events(value["on"], at.inner(value, "on"))
    if not value.get("targets"):
        start = value.start if isinstance(value, MarkedDict) else None
        raise at.error(f"{at.key}: needs 'targets', a list such as [{{webhook: URL}}]", start)
    targets_at = at.inner(value, "targets")
    raw_targets = value["targets"]
    if not isinstance(raw_targets, list):
        raise targets_at.wrong_type(raw_targets, "a list of targets such as [{webhook: URL}]")
    marks = raw_targets.item_marks if isinstance(raw_targets, MarkedList) else []
    targets = tuple(
        _target(raw, Field(targets_at.file, f"{targets_at.owner}: targets", "target",
                           marks[index] if index < len(marks) else targets_at.pos))
        for index, raw in enumerate(raw_targets)
    )
    return NotifyPolicy(on=on, targets=targets)


def _on_key(value: Any) -> Any:
    """YAML 1.1 reads a bare ``on`` key as the boolean true: here it can only mean "on"."""
    if not isinstance(value, MarkedDict) or True not in value:
        return value
    renamed = MarkedDict()
    renamed.start = value.start
    for key, item in value.items():
        name = "on" if key is True else key
        renamed[name] = item
        renamed.key_marks[name] = value.key_marks.get(key, value.start)
        renamed.value_marks[name] = value.value_marks.get(key, value.start)
    return renamed


def _events(value: Any, at: Field) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise at.wrong_type(value, f"a list of events ({', '.join(NOTIFY_EVENTS)})")
    for item in items:
        if item not in NOTIFY_EVENTS:
            raise at.error(f"unknown event {item!r} (events: {', '.join(NOTIFY_EVENTS)})")
    return tuple(dict.fromkeys(items))


def _target(raw: Any, at: Field) -> NotifyTarget:
    example = "{webhook: https://...}, {call: pkg.mod.func} or {email: [ops@example.com]}"
    if not isinstance(raw, dict):
        raise at.wrong_type(raw, f"a mapping such as {example}")
    kinds = [key for key in raw if key in TARGET_KINDS]
    if len(kinds) != 1:
        raise at.error(f"a target has exactly one of {', '.join(TARGET_KINDS)}, such as "
                       f"{example}")
    kind = kinds[0]
    sub_mapping(raw, at, (kind, *TARGET_OPTIONS[kind]), example)
    address = raw[kind]
    where = at.inner(raw, kind)
    if kind == "call":
        if not isinstance(address, str):
            raise where.wrong_type(address, f"a function path ({FUNCTION_SYNTAX})")
        try:
            parse_function_path(address)
        except ValueError:
            raise where.error(f"call must look like {FUNCTION_SYNTAX}, got {address!r}") from None
        return NotifyTarget("call", address)
    if kind == "webhook":
        if not isinstance(address, str) or urlsplit(address).scheme not in ("http", "https") \
                or not urlsplit(address).netloc:
            raise where.error("webhook must be an http:// or https:// URL")
        return NotifyTarget("webhook", address)
    addresses = [address] if isinstance(address, str) else address
    if not isinstance(addresses, list) or not addresses \
            or not all(isinstance(a, str) and "@" in a for a in addresses):
        raise where.error("email must be an address or a list of addresses")
    options = {}
    for key, name in (("smtp", "smtp"), ("from", "sender")):
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                raise at.inner(raw, key).wrong_type(raw[key], "a string")
            options[name] = raw[key]
    return NotifyTarget("email", tuple(addresses), **options)
