"""``python -m bench``: see bench/run.py and docs/bench.md."""

from bench.run import main

raise SystemExit(main())
