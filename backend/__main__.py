"""``python -m backend``: serve, generate, models, schema (see backend/cli.py)."""

import sys

from .cli import main

sys.exit(main())
