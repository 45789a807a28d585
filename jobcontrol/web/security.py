"""Who may use the web UI, and the protections every response gets.

- Authentication (when ``web: auth:`` is configured): a login form for people (a session
  cookie, see :mod:`jobcontrol.web.sessions`), ``Authorization: Bearer TOKEN`` for API
  clients.
- Without authentication the app answers only requests from this machine (loopback), unless
  told ``insecure_no_auth``: whatever server runs it, a remote client meets a login-less UI
  only by explicit choice. And only under a loopback ``Host`` name or one the config lists
  (``web: allowed_hosts``): a page on another site whose name is made to resolve to this
  machine (DNS rebinding) reaches nothing. With authentication, when names are listed, only
  those and the loopback ones.
- CSRF: every POST carries the session's token (a form field, or the ``X-CSRFToken`` header
  for the API). A request with a bearer token needs none: no browser adds that header on
  its own, so a forged request cannot carry it.
- Cookies: the session cookie is ``HttpOnly``, ``SameSite=Lax``, and ``Secure`` whenever the
  request came over HTTPS, also as told by a reverse proxy the config trusts (``web:
  proxy``, Werkzeug's ``ProxyFix``; without it the ``X-Forwarded-*`` headers are ignored).
- Headers: a strict Content-Security-Policy (no inline script or style), no sniffing, no
  framing.
"""

from __future__ import annotations

import hmac
import ipaddress
from datetime import timedelta
from typing import Any

from flask import Flask, g, redirect, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from jobcontrol.config import WebSettings
from jobcontrol.web.helpers import error_response
from jobcontrol.web.sessions import TOKEN_USER, dummy_hash, hash_method, session_user

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
#: views anyone may reach: the login form and the stylesheet/script it needs
OPEN_ENDPOINTS = {"auth.login", "static"}
#: the ``Host`` names of this machine, served always
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})

csrf = CSRFProtect()


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4 loopback mapped into IPv6."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def served_hosts(settings: WebSettings) -> frozenset[str] | None:
    """The ``Host`` names (without port) the app answers; None: any."""
    if settings.auth and not settings.allowed_hosts:
        return None
    return LOOPBACK_HOSTS | set(settings.allowed_hosts)


def host_name(host: str) -> str:
    """A ``Host`` header's name in lower case, without its port."""
    host = host.lower()
    return host if host.endswith("]") else host.rpartition(":")[0] or host


def _bearer_user(settings: WebSettings) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not settings.token:
        return None
    if hmac.compare_digest(token.strip().encode(), settings.token.encode()):
        return TOKEN_USER
    return None


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, ``Secure`` when the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


def init_security(app: Flask, settings: WebSettings, *, insecure_no_auth: bool) -> None:
    """Install authentication, CSRF protection and the security headers on ``app``."""
    if settings.proxy:  # what the proxies in front say of the client, scheme, host...
        app.wsgi_app = ProxyFix(app.wsgi_app, **settings.proxy)  # type: ignore[method-assign]
    app.session_interface = SessionInterface()
    app.config.update(
        WTF_CSRF_CHECK_DEFAULT=False,  # checked below, where a bearer token can waive it
        WTF_CSRF_TIME_LIMIT=None,  # a tab left open all day can still press Cancel
        WTF_CSRF_HEADERS=["X-CSRFToken", "X-CSRF-Token"],
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    csrf.init_app(app)
    if settings.auth:
        # a login's cookie expires with its session, which no use prolongs (without auth
        # the cookie holds only the CSRF token, kept Flask's 31 days for tabs left open)
        app.permanent_session_lifetime = timedelta(seconds=settings.session_lifetime)
        dummy_hash(hash_method(settings))  # made now, not in the first login's time
    hosts = served_hosts(settings)

    @app.before_request
    def authenticate() -> Any:
        if hosts is not None and host_name(request.host) not in hosts:
            return error_response(400, f"this jobcontrol web does not answer to the Host "
                                  f"{request.host!r}: only to {', '.join(sorted(hosts))} (see "
                                  f"web: allowed_hosts in the docs)")
        g.user = None
        g.bearer = False
        if not settings.auth:
            if not insecure_no_auth and not is_loopback(request.remote_addr):
                return error_response(403, "this jobcontrol web has no authentication configured, "
                                    "so it answers only this machine (see web: auth: in the "
                                    "docs)")
            g.user = "local"
        else:
            bearer = _bearer_user(settings)
            if bearer is not None:
                g.user, g.bearer = bearer, True
            else:
                g.user = session_user(settings)
        if g.user is None and request.endpoint not in OPEN_ENDPOINTS:
            if request.path.startswith("/api/") or request.path == "/metrics":  # machines
                return error_response(401, "log in, or send Authorization: Bearer TOKEN")
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if request.method not in ("GET", "HEAD", "OPTIONS") and not g.bearer:
            csrf.protect()  # CSRFError: answered by the app's error handler
        return None

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response
