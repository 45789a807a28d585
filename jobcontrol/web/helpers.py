"""Small things every view needs: the JobControl of the app, parameters, error statuses."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Response, current_app, jsonify, make_response, render_template, request
from werkzeug.routing import IntegerConverter

from jobcontrol.config import LOG_LEVELS
from jobcontrol.errors import (
    BrokerUnreachableError,
    BuildNotFoundError,
    BuildStateError,
    DependencyError,
    ExitCode,
    JobAlreadyRunningError,
    JobControlError,
    JobPausedError,
    RunNotFoundError,
    StorageError,
    UnknownJobError,
)
from jobcontrol.models import BuildState

#: where ``create_app`` keeps the JobControl in ``app.extensions``
EXTENSION = "jobcontrol"
#: builds a page or API call lists at most
MAX_LIMIT = 500
#: the largest whole number a parameter may be: what the databases store (64-bit signed)
MAX_INT = 2**63 - 1
#: a whole number as a parameter may give it (longer ones are no number jobcontrol stores)
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,100}")


class IdConverter(IntegerConverter):
    """``<int:...>`` in a route: at most :data:`MAX_INT` (a larger id is no build: 404)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_INT)
        super().__init__(map, *args, **kwargs)


class BadParameter(JobControlError):
    """A query or form parameter that cannot be used (answered with 400)."""


def current_jc() -> Any:
    """The app's :class:`~jobcontrol.core.JobControl`."""
    return current_app.extensions[EXTENSION]


def error_response(status: int, message: str, running: list[int] | None = None) -> Response:
    """An error as JSON ``{"error": {"status", "message"}}`` under ``/api/``, else a page.
    ``running``: the builds a refused launch waits on (``"running": [ids]``, and links)."""
    if request.path.startswith("/api/"):
        error: dict[str, Any] = {"status": status, "message": message}
        if running:
            error["running"] = running
        response = jsonify({"error": error})
    else:
        response = make_response(render_template("error.html", status=status,
                                                 message=message, back=way_back(),
                                                 running=running or []))
    response.status_code = status
    return response


def way_back() -> str | None:
    """The page the reader came from, for an error page's "back" link: only a path of this
    site (the Referer's, sent same-origin only), never the failed request itself."""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc != request.host or referrer.scheme not in ("http", "https"):
        return None
    back = referrer.path + (f"?{referrer.query}" if referrer.query else "")
    # "//host" and "/\\host" would lead off the site
    if not back.startswith("/") or back[1:2] in ("/", "\\") or \
            back == request.full_path.rstrip("?"):
        return None
    return back


def http_status(error: JobControlError) -> int:
    """The HTTP status that says what a library error means."""
    if isinstance(error, (UnknownJobError, BuildNotFoundError, RunNotFoundError)):
        return 404
    if isinstance(error, (BuildStateError, JobAlreadyRunningError, DependencyError,
                          JobPausedError)):
        return 409
    if isinstance(error, (StorageError, BrokerUnreachableError)):
        return 503  # a service behind the web is down: try again later
    # the web's own launch errors carry the build command's exit code
    conflicts = (ExitCode.DEPENDENCIES, ExitCode.RUNNING)
    return 409 if getattr(error, "exit_code", None) in conflicts else 400


def int_arg(name: str, default: int | None = None, *, low: int = 0,
            high: int = MAX_INT) -> int | None:
    """A whole-number query parameter within ``low..high``; BadParameter otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    return whole_number(name, raw, low, high)


def whole_number(name: str, raw: str, low: int, high: int) -> int:
    """``raw`` as a number within ``low..high`` (ASCII digits only); BadParameter otherwise."""
    if not WHOLE_NUMBER.fullmatch(raw):
        raise BadParameter(f"{name} must be a whole number, got {raw!r}")
    value = int(raw)
    if value < low or value > high:
        bounds = f"from {low} to {high}" if high != MAX_INT else f"at least {low}"
        raise BadParameter(f"{name} must be {bounds}, got {value}")
    return value


def states_arg() -> list[BuildState] | None:
    """``?state=failed&state=running`` as build states (None: any state)."""
    raw = [s for s in request.args.getlist("state") if s]
    states = []
    for value in raw:
        try:
            states.append(BuildState(value))
        except ValueError:
            names = ", ".join(s.value for s in BuildState)
            raise BadParameter(f"state must be one of {names}, got {value!r}") from None
    return states or None


def level_arg() -> int:
    """``?level=WARNING`` (a name, any case, or a number) as a logging level; 0 for all."""
    raw = (request.args.get("level") or "").strip().upper()
    if not raw:
        return 0
    if raw.isdigit():
        return whole_number("level", raw, 0, MAX_INT)
    raw = "WARNING" if raw == "WARN" else raw
    if raw not in LOG_LEVELS:
        raise BadParameter(f"level must be one of {', '.join(LOG_LEVELS)} or a number, "
                           f"got {raw!r}")
    return LOG_LEVELS[raw]


def flag(source: Any, name: str) -> bool:
    """A checkbox or JSON boolean: true for ``1``, ``true``, ``on``, ``yes`` or ``True``."""
    value = source.get(name)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "on", "yes") if value is not None else False
