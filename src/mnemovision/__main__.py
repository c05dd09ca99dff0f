"""``python -m mnemovision`` (and ``torchrun -m mnemovision``) runs the command line."""

import sys

from mnemovision.cli import main

sys.exit(main())
