"""Helpers for the web tests: CSRF tokens out of pages."""

from __future__ import annotations

import re
from typing import Any

_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_from(html: str) -> str:
    """The CSRF token a page carries (every page has it in a meta tag)."""
    match = _META.search(html)
    assert match, "no csrf-token meta tag in the page"
    return match.group(1)


def page_token(client: Any, path: str = "/") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return csrf_from(response.get_data(as_text=True))
