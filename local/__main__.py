"""``python -m local run`` / ``python -m local send``: see local/cli.py."""

from local.cli import main

raise SystemExit(main())
