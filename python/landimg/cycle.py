"""``python -m landimg.cycle``: the experiment program (a stable entry point).

The program lives in :mod:`landimg.experiment`; this module keeps the command and the names
``landimg.cycle.run`` / ``landimg.cycle.main`` where users find them.
"""

import sys

from landimg.experiment.cycle import *  # noqa: F403
from landimg.experiment.cycle import __all__, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
