"""Local tooling: never part of the Lambda zip (which is src/ only)."""

import sys
from pathlib import Path

# The Lambda code lives in src/ (the zip's root): put it on the path, so `python -m local ...`
# works from the repository root as pasted, without PYTHONPATH.
_SRC = str(Path(__file__).resolve().parent.parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
