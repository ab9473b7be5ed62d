"""``python -m healer``: the same CLI as the ``healer`` command."""

import sys

from healer.cli import main

sys.exit(main())
