"""The login form and logout (present only when ``web: auth:`` is configured)."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from jobcontrol.timeutil import utcnow
from jobcontrol.web.sessions import (
    check_credentials,
    end_session,
    login_failed,
    login_keys,
    login_wait,
    start_session,
)

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


#: a path on this site: "/" not followed by "/" (another site), then printable ASCII but
#: a backslash (browsers read "/\" as "//") and nothing to split the Location header (CR, LF)
SAME_SITE_PATH = re.compile(r"/(?!/)[!-\[\]-~]*")


def _safe_next(target: str | None) -> str:
    """Only a path on this site: a login link must not send anyone elsewhere."""
    if target and SAME_SITE_PATH.fullmatch(target):
        return target
    return url_for("pages.jobs")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    settings = current_app.config["JOBCONTROL_WEB"]
    if not settings.auth:
        return redirect(url_for("pages.jobs"))
    error, status, wait = None, 200, 0
    if request.method == "POST":
        name, now = request.form.get("user", "").strip(), utcnow()
        keys = login_keys(name, request.remote_addr)
        wait = login_wait(keys, now)
        if wait:
            log.warning("login for user %r from %s throttled: too many failed logins (retry "
                        "in %ds)", name, request.remote_addr, wait)
            error, status = f"too many failed logins: try again in {wait} seconds", 429
        elif (user := check_credentials(settings, name, request.form.get("password", ""))):
            start_session(settings, user)
            return redirect(_safe_next(request.args.get("next")))
        else:
            login_failed(keys, now)
            log.warning("failed login for user %r from %s", name, request.remote_addr)
            error, status = "wrong user name or password", 401
    response = make_response(render_template(
        "login.html", error=error, users=bool(settings.users), token=bool(settings.token)),
        status)
    if wait:
        response.headers["Retry-After"] = str(wait)
    return response


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    end_session()
    flash("logged out")
    return redirect(url_for("auth.login"))
