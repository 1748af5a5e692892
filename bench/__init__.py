"""``make bench``: the consumer against a sequential reference design, side by side (not shipped)."""

import sys
from pathlib import Path

# The Lambda code lives in src/ (its zip root) and the local tooling at the repository root.
for _path in (Path(__file__).resolve().parent.parent / "src", Path(__file__).resolve().parent.parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
