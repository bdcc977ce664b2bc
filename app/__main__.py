"""``python -m app`` = the ``tracelab`` command."""

import sys

from app.cli import main

sys.exit(main())
