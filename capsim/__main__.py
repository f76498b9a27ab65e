"""``python -m capsim`` is the ``capsim`` command."""

import sys

from capsim.cli import main

sys.exit(main())
