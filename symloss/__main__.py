"""``python -m symloss``: the same as the ``symloss`` command."""

import sys

from symloss.cli import main

sys.exit(main())
