"""Masking secrets: values that must never be stored or shown.

A secret is a value under a key that looks like one (password, secret, token, api_key, ...),
a value listed under ``secrets:`` in the config, or a value read with ``!env NAME``. Once
known, a secret is replaced by ``***`` wherever it appears: the stored definition, log
messages, exception messages and tracebacks, return values, CLI and JSON output. It is
found in the forms it takes in practice too (:func:`secret_forms`): escaped by ``repr`` or
JSON, as bytes, base64, URL-encoded or hex.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
#: key names whose values are secrets (matched anywhere in the key, any case)
#: words of a key that make its value a secret (a key is split at ``_``, ``-``, ``.``, spaces
#: and camelCase humps: ``db_passwd``, ``apiKey``, ``AUTH_TOKEN`` match; ``bypass``,
#: ``compass`` and ``tokenizer`` do not)
SECRET_WORDS = frozenset({
    "pass", "passwd", "password", "passwords", "passphrase", "pwd", "secret", "secrets",
    "token", "tokens", "apikey", "credential", "credentials", "privatekey",
})
#: two words that make a secret together (``api_key``, ``private-key``)
SECRET_PAIRS = frozenset({("api", "key"), ("private", "key")})
_KEY_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
#: secrets shorter than this are not searched for inside text (masking "a" would mask
#: every "a"); their values are still masked where they stand under a secret key
MIN_SECRET_LENGTH = 3
#: a base64 form of a secret cut out of a longer byte string (its edges mix with the
#: bytes around it) is searched for only when at least this long: shorter ones could
#: turn up in unrelated base64
MIN_BASE64_CORE = 8


def secret_forms(secret: str) -> set[str]:
    """The texts ``secret`` becomes where it is written in practice: itself; inside a
    ``repr`` or ``ascii`` (either quote style) and a JSON string (ASCII or not); as bytes
    in a ``repr`` (``b'...'``); base64, standard and URL-safe, whole (with and without
    padding) and, where it sits inside longer bytes, at each of the three alignments
    (the characters the secret's bytes alone decide); URL-encoded (``quote``,
    ``quote_plus``); hex (lower and upper case)."""
    data = secret.encode("utf-8", "surrogatepass")
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             quote(secret, safe=""), quote(secret), quote_plus(secret), data.hex(),
             data.hex().upper()}
    for text in (secret, data):
        # repr quotes with ' unless the text holds ' and not ": with both, ' is escaped
        forms.add(repr(text)[2 if isinstance(text, bytes) else 1:-1])
        both = ("'\"" + text) if isinstance(text, str) else b"'\"" + text
        forms.add(repr(both)[5 if isinstance(text, bytes) else 4:-1])
        if isinstance(text, str):
            forms.add(ascii(text)[1:-1])
            forms.add(ascii("'\"" + text)[4:-1])
    for offset in range(3):  # the secret after 0, 1 or 2 other bytes
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            coded = encode(b"\0" * offset + data).decode("ascii")
            if offset == 0:
                forms.update((coded, coded.rstrip("=")))
            start = 4 if offset else 0  # the first group holds other bytes
            core = coded[start: 4 * ((offset + len(data)) // 3)]  # the last may too
            if len(core) >= MIN_BASE64_CORE:
                forms.add(core)
    return {form for form in forms if form}


def is_secret_key(key: object) -> bool:
    """True for mapping keys such as ``password``, ``db_password``, ``API_KEY``, ``token``."""
    return isinstance(key, str) and _is_secret_text(key)


@lru_cache(maxsize=4096)  # the same few keys come again in every job, snapshot and mask
def _is_secret_text(key: str) -> bool:
    words = [word.lower() for word in _KEY_WORD.findall(key)]
    return any(word in SECRET_WORDS for word in words) \
        or any(pair in SECRET_PAIRS for pair in itertools.pairwise(words))


#: endings of an environment variable's name that make its value a secret even where the
#: name is one word (``PGPASSWORD``; ``MYSQL_PWD`` and ``API_KEY`` are secret keys already)
SECRET_ENV_ENDINGS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "APIKEY")


def is_secret_env_name(name: str) -> bool:
    """True for an environment variable whose value is a secret: a secret key's name
    (``DB_PASSWORD``, ``API_TOKEN``) or one ending in a secret word (``PGPASSWORD``)."""
    return is_secret_key(name) or name.upper().endswith(SECRET_ENV_ENDINGS)


def secret_values(value: Any) -> set[str]:
    """Every string (or number, as text) found under a secret-looking key in ``value``."""
    found: set[str] = set()

    def visit(item: Any, under_secret: bool) -> None:
        if isinstance(item, dict):
            for key, child in item.items():
                visit(child, under_secret or is_secret_key(key))
        elif isinstance(item, (list, tuple, set, frozenset)):
            for child in item:
                visit(child, under_secret)
        elif under_secret and isinstance(item, (str, int, float)) and not isinstance(item, bool):
            text = str(item)
            if text:
                found.add(text)

    visit(value, False)
    return found


class Masker:
    """Replaces known secrets in text and structures. An empty masker changes nothing."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = frozenset(s for s in secrets if s)
        forms = {form for s in self.secrets if len(s) >= MIN_SECRET_LENGTH
                 for form in secret_forms(s)}
        searchable = sorted(forms, key=len, reverse=True)  # the longest form first
        self._pattern = (re.compile("|".join(re.escape(s) for s in searchable))
                         if searchable else None)
        raw = sorted({s.encode("utf-8", "surrogatepass") for s in searchable}, key=len,
                     reverse=True)
        self._bytes_pattern = (re.compile(b"|".join(re.escape(s) for s in raw))
                               if raw else None)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, value: str) -> str:
        """``value`` with every secret in it replaced by ``***``."""
        if self._pattern is None or not value:
            return value
        return self._pattern.sub(MASK, value)

    def optional_text(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def bytes(self, value: bytes) -> bytes:
        """``value`` with every secret's bytes (in any of its forms) replaced by ``***``."""
        if self._bytes_pattern is None or not value:
            return value
        return self._bytes_pattern.sub(MASK.encode(), value)

    def value(self, value: Any, under_secret: bool = False) -> Any:
        """A copy of ``value`` with secret keys' values and secrets inside strings masked."""
        if isinstance(value, dict):
            return {self.value(key): self.value(child, under_secret or is_secret_key(key))
                    for key, child in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return type(value)(self.value(child, under_secret) for child in value)
        if under_secret and value is not None and not isinstance(value, bool):
            return MASK
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (bytes, bytearray)):
            return type(value)(self.bytes(bytes(value)))
        return value
