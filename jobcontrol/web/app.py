"""The app factory: ``create_app(jobcontrol)`` for any WSGI server, ``create_app_from_env()``
for servers that import a module path (gunicorn)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from flask import Flask
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException

from jobcontrol.errors import JobControlError
from jobcontrol.text import visible
from jobcontrol.timeutil import format_duration
from jobcontrol.web import api, auth, builds_page, live, metrics, pages
from jobcontrol.web.ansi import runs as ansi_runs
from jobcontrol.web.helpers import EXTENSION, IdConverter, error_response, http_status
from jobcontrol.web.security import init_security
from jobcontrol.web.sessions import secret_key

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

#: ``create_app_from_env`` reads these, besides ``$JOBCONTROL_CONFIG`` and ``$JOBCONTROL_STORAGE``
INSECURE_ENV = "JOBCONTROL_WEB_INSECURE_NO_AUTH"


def create_app(jobcontrol: JobControl, *, insecure_no_auth: bool = False) -> Flask:
    """A Flask app serving the web UI and the JSON API of ``jobcontrol`` (a JobControl).

    Without ``web: auth:`` in the config the app answers only loopback clients, unless
    ``insecure_no_auth``. The secret key comes from the config or is generated once into
    a file of the user's (see :func:`jobcontrol.web.sessions.secret_key`).
    """
    app = Flask(__name__)
    settings = jobcontrol.config.web
    app.config.update(
        SECRET_KEY=secret_key(settings),
        JOBCONTROL_WEB=settings,
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = jobcontrol
    app.url_map.converters["int"] = IdConverter  # before the routes that use it
    init_security(app, settings, insecure_no_auth=insecure_no_auth)
    _init_templates(app)
    live.init_reload(app, jobcontrol)
    app.register_blueprint(pages.bp)
    app.register_blueprint(builds_page.bp)
    app.register_blueprint(live.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(metrics.bp)
    _init_errors(app)
    return app


def create_app_from_env() -> Flask:
    """``create_app`` for the config named by ``$JOBCONTROL_CONFIG`` (else
    ``./jobcontrol.yaml``) and its storage (``$JOBCONTROL_STORAGE`` overrides it);
    ``$JOBCONTROL_WEB_INSECURE_NO_AUTH=1`` serves remote clients without a login.

    For WSGI servers: ``gunicorn 'jobcontrol.web:create_app_from_env()'``.
    """
    from jobcontrol.core import JobControl

    insecure = os.environ.get(INSECURE_ENV, "").strip().lower() in ("1", "true", "yes")
    return create_app(JobControl.from_config(), insecure_no_auth=insecure)


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}``: None shows as nothing, control characters in text are shown
    visibly (HTML escaping follows, by autoescape); markup the templates made is left alone."""
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value, multiline=True)
    return value


def _init_templates(app: Flask) -> None:
    app.jinja_env.finalize = _finalize
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    @app.template_filter("when")
    def when(value: datetime | None) -> Markup:
        """A time in UTC, in a ``<time>`` that app.js shows in the reader's zone (UTC on
        hover); without JavaScript it stays UTC."""
        if value is None:
            return Markup("")
        utc = value.astimezone(timezone.utc)
        return Markup('<time class="when" datetime="{}">{}</time>').format(
            utc.isoformat(timespec="seconds").replace("+00:00", "Z"),
            utc.strftime("%Y-%m-%d %H:%M:%S"))

    @app.template_filter("ansi")
    def ansi(value: str | None) -> Markup:
        """Log text with its ANSI colours as spans of classes; every run escaped and its
        other control characters shown (``\\x1b...``), never acted on."""
        parts = []
        for run in ansi_runs(value or ""):
            text = visible(run.text, multiline=True)
            parts.append(Markup('<span class="{}">{}</span>').format(run.classes, text)
                         if run.classes else escape(text))
        return Markup("").join(parts)

    @app.template_filter("duration")
    def duration(seconds: float | None) -> str:
        return format_duration(seconds) if seconds is not None else ""

    @app.template_filter("iso")
    def iso(value: datetime | None) -> str:
        return value.isoformat() if value else ""


def _init_errors(app: Flask) -> None:
    @app.errorhandler(JobControlError)
    def library_error(error: JobControlError) -> Any:
        # a job already running: its running builds, linked (JSON: their ids)
        running = list(getattr(error, "running", ()))
        return error_response(http_status(error), str(error), running=running)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        response = error_response(error.code or 500, error.description or error.name)
        for name, value in error.get_headers():  # Allow, of a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response
