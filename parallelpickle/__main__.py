"""``python -m parallelpickle`` is the ``parallelpickle`` command."""

import sys

from .cli import main

sys.exit(main())
