"""Logins and the sessions they make (when ``web: auth:`` is configured).

- A session is a cookie signed with the secret key, holding the user, a random session id
  and a keyed hash of the credential it was made with (the user's password hash, or the
  token). It holds while all three do: the credential is unchanged (a new password, a
  rotated or removed token ends it), and the storage still has the id, unexpired (a logout
  deletes it; ``web: session_lifetime`` after the login, 12 hours by default, it expires
  however busy it is). Every process serving the UI reads the same storage, so they agree.
- The secret key is the config's ``web: secret_key``, else one generated once into a file
  only its user can read (``$XDG_STATE_HOME/jobcontrol/web-secret-key``, mode 0600), never
  the database: whoever can read the database cannot sign a session.
- A login checks a password hash for a user name that does not exist too (a dummy one,
  made like the configured ones), so the answer takes as long either way. Failed logins
  are counted in the storage per user name and per client address:
  :data:`MAX_LOGIN_FAILURES` within :data:`LOGIN_WINDOW` under either, and the next try is
  answered 429 with ``Retry-After`` until the oldest of them is out of the window (the
  login view logs each failure and each refusal as a warning).
"""

from __future__ import annotations

import functools
import hmac
import math
import os
import secrets
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app, session
from werkzeug.security import check_password_hash, generate_password_hash

from jobcontrol.config import WebSettings
from jobcontrol.errors import JobControlError
from jobcontrol.timeutil import utcnow
from jobcontrol.web.helpers import current_jc

#: the user a login with the API token is
TOKEN_USER = "token"
#: how long a failed login counts against its user name and its client address
LOGIN_WINDOW = timedelta(minutes=15)
#: failed logins within :data:`LOGIN_WINDOW` after which the next is refused (429)
MAX_LOGIN_FAILURES = 10
#: the generated secret key's file, in ``$XDG_STATE_HOME/jobcontrol`` (``~/.local/state``)
KEY_FILE = "web-secret-key"


def secret_key(settings: WebSettings) -> str:
    """The config's ``web.secret_key``, else the one generated into :func:`key_file`: the
    same for every process of this user serving the UI (gunicorn workers, restarts)."""
    if settings.secret_key:
        return settings.secret_key
    path = key_file()
    try:
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent)  # mode 0600
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(32))
                os.link(temporary, path)  # atomic, never over another's: the first one wins
            except FileExistsError:
                pass
            finally:
                os.unlink(temporary)
        key = path.read_text().strip()
    except OSError as error:
        raise JobControlError(f"cannot keep the web UI's secret key in {path}: {error} (or set "
                              f"web: secret_key in the config)") from None
    if len(key) < 32:
        raise JobControlError(f"{path} holds no secret key: delete it, and one is generated")
    return key


def key_file() -> Path:
    """Where a generated secret key is kept: the user's state folder, not the database."""
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "jobcontrol" / KEY_FILE


# -- credentials -----------------------------------------------------------------------------


def check_credentials(settings: WebSettings, user: str, password: str) -> str | None:
    """The name to log in as, when ``user``/``password`` (or the token) are right. An
    unknown user name costs the same hash check as a known one."""
    if user:
        known = user in settings.users
        hashed = settings.users[user] if known else dummy_hash(hash_method(settings))
        return user if check_password_hash(hashed, password) and known else None
    if settings.token and hmac.compare_digest(password.encode(), settings.token.encode()):
        return TOKEN_USER
    return None


def hash_method(settings: WebSettings) -> str:
    """The method (and cost) of the first configured password hash, e.g. ``scrypt:32768:8:1``."""
    return next((h.split("$", 1)[0] for h in settings.users.values()), "scrypt")


@functools.lru_cache(maxsize=8)
def dummy_hash(method: str) -> str:
    """A hash of a random password, made as ``method`` says: checking it costs what checking
    a user's does."""
    return generate_password_hash(secrets.token_hex(16), method=method)


def credential_mark(settings: WebSettings, user: str) -> str | None:
    """A keyed hash of the credential ``user`` logs in with now (its password hash, or the
    token); None when there is none."""
    credential = settings.users.get(user) or (settings.token if user == TOKEN_USER else None)
    if credential is None:
        return None
    key = str(current_app.secret_key).encode()
    return hmac.new(key, f"{user}\0{credential}".encode(), "sha256").hexdigest()


# -- sessions --------------------------------------------------------------------------------


def start_session(settings: WebSettings, user: str) -> None:
    """A new session for ``user``, recorded in the storage (a fresh one: no fixation)."""
    session_id, now = secrets.token_urlsafe(32), utcnow()
    current_jc().storage.start_web_session(
        session_id, user, now, now + timedelta(seconds=settings.session_lifetime))
    session.clear()
    session.permanent = True  # the cookie expires with it (PERMANENT_SESSION_LIFETIME)
    session.update(user=user, sid=session_id, cred=credential_mark(settings, user))


def session_user(settings: WebSettings) -> str | None:
    """The user of this request's session while it holds (see the module's doc); an
    ended session is cleared."""
    user, session_id, mark = session.get("user"), session.get("sid"), session.get("cred")
    if user is None:
        return None
    expected = credential_mark(settings, user) if isinstance(user, str) else None
    if (expected is not None and isinstance(mark, str) and isinstance(session_id, str)
            and hmac.compare_digest(mark, expected)
            and current_jc().storage.web_session_user(session_id, utcnow()) == user):
        return user
    session.clear()
    return None


def end_session() -> None:
    """Log out: the session's record goes from the storage, and the cookie is emptied."""
    session_id = session.get("sid")
    if isinstance(session_id, str):
        current_jc().storage.end_web_session(session_id)
    session.clear()


# -- throttling failed logins ----------------------------------------------------------------


def login_keys(user: str, address: str | None) -> list[str]:
    """What failed logins are counted under: the user name given, the client address."""
    return [f"user:{user[:200]}", f"address:{address}"]


def login_wait(keys: list[str], now: datetime) -> int:
    """Seconds before a login may be tried under ``keys`` again; 0: now."""
    wait = 0.0
    for key in keys:
        failures = current_jc().storage.login_failures(key, now - LOGIN_WINDOW)
        if len(failures) >= MAX_LOGIN_FAILURES:
            oldest = failures[-MAX_LOGIN_FAILURES]
            wait = max(wait, (oldest + LOGIN_WINDOW - now).total_seconds())
    return math.ceil(wait)


def login_failed(keys: list[str], now: datetime) -> None:
    current_jc().storage.record_login_failure(keys, now, forget_before=now - LOGIN_WINDOW)
