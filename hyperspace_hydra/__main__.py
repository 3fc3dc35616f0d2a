"""``python -m hyperspace_hydra`` is the ``hyperspace`` command."""

import sys

from hyperspace_hydra.cli import main

sys.exit(main())
