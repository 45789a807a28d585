"""Notifications when a job's state changes: it starts failing, or it recovers.

``notify: {on: [failure, recovery], targets: [...]}`` on a job (or in ``defaults``). A change
is judged against the job's previous build that ran to an end (success or failure;
skipped and cancelled builds change nothing), so a job failing every hour for a day sends one
``failure`` and then one ``recovery``, not 24 messages. Sending never fails a build: a target
that raises, refuses or times out is logged and the next target is tried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobcontrol.models import Build, BuildState

#: the changes a job can be notified of
NOTIFY_EVENTS = ("failure", "recovery")
#: the kinds of target, each its key in the YAML
TARGET_KINDS = ("call", "webhook", "email")
#: seconds a webhook or SMTP server gets to answer
SEND_TIMEOUT = 10.0
#: states that say how a job is doing (the others change nothing)
_FAILING = (BuildState.FAILED, BuildState.ABANDONED)
_VERDICTS = (BuildState.SUCCESS, *_FAILING)


@dataclass(frozen=True)
class NotifyTarget:
    """Where a notification goes: ``call`` (a dotted path to a function taking the event
    dict), ``webhook`` (a URL: POST of the event as JSON) or ``email`` (addresses, sent
    through ``smtp``, ``host[:port]``, from ``sender``)."""

    kind: str
    address: str | tuple[str, ...]
    smtp: str = "localhost:25"
    sender: str = "jobcontrol@localhost"

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {self.kind: self.address if isinstance(self.address, str)
                                else list(self.address)}
        if self.kind == "email":
            data.update({"smtp": self.smtp, "from": self.sender})
        return data


@dataclass(frozen=True)
class NotifyPolicy:
    """``notify:`` of a job: which changes, to which targets."""

    on: tuple[str, ...] = NOTIFY_EVENTS
    targets: tuple[NotifyTarget, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        return {"on": list(self.on), "targets": [t.as_json() for t in self.targets]}


def state_change(build: Build, previous: Build | None) -> str | None:
    """``failure`` or ``recovery`` if ``build`` changes how its job is doing, else None.

    ``previous`` is the job's latest earlier build that succeeded or failed (or None). A
    first build that fails is a failure; a first success is no news.
    """
    if build.state not in _VERDICTS:
        return None
    was_failing = previous is not None and previous.state in _FAILING
    if build.state in _FAILING and not was_failing:
        return "failure"
    if build.state is BuildState.SUCCESS and was_failing:
        return "recovery"
    return None


def event_payload(event: str, build: Build, previous: Build | None) -> dict[str, Any]:
    """The JSON-able body every target gets."""
    def summary(one: Build | None) -> dict[str, Any] | None:
        if one is None:
            return None
        return {"id": one.id, "state": one.state.value, "reason": one.reason,
                "finished": one.finished.isoformat() if one.finished else None}

    return {
        "event": event,
        "job": build.job_id,
        "build": {**(summary(build) or {}), "host": build.host,
                  "exception": build.exception.to_dict() if build.exception else None},
        "previous": summary(previous),
    }


def send(policy: NotifyPolicy, event: str, payload: Mapping[str, Any],
         import_function: Callable[[str], Callable[..., Any]]) -> list[str]:
    """Send ``payload`` to every target of ``policy`` if it wants ``event``; returns the
    problems met, one line each (the caller shows or logs them). Never raises."""
    if event not in policy.on:
        return []
    problems = []
    for target in policy.targets:
        try:
            _SENDERS[target.kind](target, payload, import_function)
        except Exception as exc:  # a notification must never fail the build
            problem = (f"notification {event} of {payload['job']!r} to {target.kind} "
                       f"{_describe(target)} failed: {type(exc).__name__}: {exc}")
            problems.append(problem)
    return problems


def _describe(target: NotifyTarget) -> str:
    if isinstance(target.address, str):
        return target.address
    return ", ".join(target.address)


def _call(target: NotifyTarget, payload: Mapping[str, Any],
          import_function: Callable[[str], Callable[..., Any]]) -> None:
    assert isinstance(target.address, str)
    import_function(target.address)(dict(payload))


def _webhook(target: NotifyTarget, payload: Mapping[str, Any], _: Any) -> None:
    import urllib.request  # here: only a config that notifies pays for the import

    assert isinstance(target.address, str)
    request = urllib.request.Request(
        target.address, data=json.dumps(payload).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "jobcontrol"},
    )
    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT) as response:
        response.read()


def _email(target: NotifyTarget, payload: Mapping[str, Any], _: Any) -> None:
    import smtplib
    from email.message import EmailMessage

    message = EmailMessage()
    build = payload["build"]
    message["Subject"] = (f"[jobcontrol] {payload['job']}: {payload['event']} "
                          f"(build #{build['id']} {build['state']})")
    message["From"] = target.sender
    message["To"] = ", ".join(_addresses(target.address))
    message.set_content(json.dumps(payload, indent=2))
    host, _, port = target.smtp.rpartition(":") if ":" in target.smtp else (target.smtp, "", "")
    with smtplib.SMTP(host, int(port or 25), timeout=SEND_TIMEOUT) as smtp:
        smtp.send_message(message)


def _addresses(address: str | Sequence[str]) -> list[str]:
    return [address] if isinstance(address, str) else list(address)


_SENDERS: dict[str, Callable[[NotifyTarget, Mapping[str, Any], Any], None]] = {
    "call": _call,
    "webhook": _webhook,
    "email": _email,
}


class Notifier:
    """Tells each finished build's job's targets when the build changes how the job is
    doing; what :class:`~jobcontrol.execution.orchestrator.BuildRun` calls as builds end."""

    def __init__(self, storage: Any, policies: Mapping[str, NotifyPolicy | None],
                 import_function: Callable[[str], Callable[..., Any]]) -> None:
        self.storage = storage
        self.policies = policies
        self.import_function = import_function

    def build_finished(self, build: Build) -> list[str]:
        """Send what ``build`` calls for; returns the problems met (never raises)."""
        policy = self.policies.get(build.job_id)
        if policy is None or build.state not in _VERDICTS:
            return []
        try:
            earlier = self.storage.list_builds(build.job_id, states=list(_VERDICTS),
                                               before_id=build.id, limit=1)
        except Exception as exc:  # the storage's trouble is the build's, not ours to raise
            return [f"notification of {build.job_id!r} not sent: {exc}"]
        previous = earlier[0] if earlier else None
        event = state_change(build, previous)
        if event is None:
            return []
        return send(policy, event, event_payload(event, build, previous), self.import_function)
