"""The login form and logout (present only when ``web: auth:`` is configured)."""

from __future__ import annotations

import re
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from jobcontrol.web.security import check_credentials

bp = Blueprint("auth", __name__)


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
    error = None
    if request.method == "POST":
        user = check_credentials(settings, request.form.get("user", "").strip(),
                                 request.form.get("password", ""))
        if user is not None:
            session.clear()  # a new session on login: no fixation
            session["user"] = user
            return redirect(_safe_next(request.args.get("next")))
        error = "wrong user name or password"
    status = 401 if error else 200
    return render_template("login.html", error=error, users=bool(settings.users),
                           token=bool(settings.token)), status


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    flash("logged out")
    return redirect(url_for("auth.login"))
