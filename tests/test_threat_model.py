"""The threat model cannot drift from the tests: every test it names as the one that attacks a
defence exists (a test function, or a test file)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
PAGE = ROOT / "docs" / "explanation" / "threat-model.rst"


def test_every_test_the_threat_model_cites_exists() -> None:
    text = PAGE.read_text()
    tests = "\n".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    cited = set(re.findall(r"\btest_[a-z0-9_]+", text))
    assert len(cited) >= 10, "the page cites the tests that attack each defence"
    for name in sorted(cited):
        assert (ROOT / "tests" / f"{name}.py").exists() or re.search(
            rf"^def {name}\(", tests, flags=re.M), f"{name} is cited but no such test exists"
