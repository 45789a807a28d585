"""Masking secrets: values that must never be stored or shown.

A secret is a value under a key that looks like one (password, secret, token, api_key, ...),
a value listed under ``secrets:`` in the config, or a value read with ``!env NAME``. Once
known, a secret is replaced by ``***`` wherever it appears: the stored definition, log
messages, exception messages and tracebacks, return values, CLI and JSON output.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

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


def is_secret_key(key: object) -> bool:
    """True for mapping keys such as ``password``, ``db_password``, ``API_KEY``, ``token``."""
    return isinstance(key, str) and _is_secret_text(key)


@lru_cache(maxsize=4096)  # the same few keys come again in every job, snapshot and mask
def _is_secret_text(key: str) -> bool:
    words = [word.lower() for word in _KEY_WORD.findall(key)]
    return any(word in SECRET_WORDS for word in words) \
        or any(pair in SECRET_PAIRS for pair in itertools.pairwise(words))


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
        searchable = sorted((s for s in self.secrets if len(s) >= MIN_SECRET_LENGTH),
                            key=len, reverse=True)
        self._pattern = (re.compile("|".join(re.escape(s) for s in searchable))
                         if searchable else None)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, value: str) -> str:
        """``value`` with every secret in it replaced by ``***``."""
        if self._pattern is None or not value:
            return value
        return self._pattern.sub(MASK, value)

    def optional_text(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def value(self, value: Any, under_secret: bool = False) -> Any:
        """A copy of ``value`` with secret keys' values and secrets inside strings masked."""
        if isinstance(value, dict):
            return {key: self.value(child, under_secret or is_secret_key(key))
                    for key, child in value.items()}
        if isinstance(value, list):
            return [self.value(child, under_secret) for child in value]
        if isinstance(value, tuple):
            return tuple(self.value(child, under_secret) for child in value)
        if under_secret and value is not None and not isinstance(value, bool):
            return MASK
        if isinstance(value, str):
            return self.text(value)
        return value
