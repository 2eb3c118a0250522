"""``python -m qjobd`` runs the daemon."""

import sys

from qjobd.cli import main

sys.exit(main())
