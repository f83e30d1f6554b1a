"""``python -m dagster_logship.cli``: the ``dagster-logship`` command."""

import sys

from . import main

sys.exit(main())
