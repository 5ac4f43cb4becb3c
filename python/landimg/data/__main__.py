"""``python -m landimg.data``: see :mod:`landimg.data.cli`."""

import sys

from landimg.data.cli import main

if __name__ == "__main__":
    sys.exit(main())
