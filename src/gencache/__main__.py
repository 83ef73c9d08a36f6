"""``python -m gencache``: the same as the ``gencache`` command."""

import sys

from gencache.cli import main

sys.exit(main())
