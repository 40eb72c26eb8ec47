"""Launch the OV-SAM annotator from a checkout: ``python launch.py --help``.

Installed (``pip install .``), the same launcher is the ``ovsam-annotator`` command.
"""

import sys

from app.launch import main

if __name__ == "__main__":
    sys.exit(main())
