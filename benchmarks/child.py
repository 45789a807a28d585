"""Runs one case in this fresh process: ``python -m benchmarks.child CASE_JSON WORKDIR``.

Prints ``RESULT {json}`` last: the case's result, ``{"skipped": reason}`` or
``{"error": text}``. The parent reads this process's peak memory when it reaps it.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path

from benchmarks.common import Skipped


def main() -> None:
    case = json.loads(sys.argv[1])
    workdir = Path(sys.argv[2])
    module_name, _, func_name = case["target"].partition(":")
    try:
        module = importlib.import_module(module_name)
        outcome = getattr(module, func_name)(workdir, **case["kwargs"])
    except Skipped as exc:
        outcome = {"skipped": str(exc)}
    except Exception as exc:  # reported in the table; the traceback goes to stderr
        traceback.print_exc()
        outcome = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]}
    sys.stdout.flush()
    print("RESULT " + json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
