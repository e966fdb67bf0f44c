"""``python -m mmgan``: the ``mmgan`` command (:mod:`mmgan.cli`)."""

import sys

from mmgan.cli import main

sys.exit(main())
