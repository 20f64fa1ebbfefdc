"""``python -m sipbridge.embedded``: the embedded model's command line (see :mod:`.server`)."""

import sys

from sipbridge.embedded.server import main

sys.exit(main())
