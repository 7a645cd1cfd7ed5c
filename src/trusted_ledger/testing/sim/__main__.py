"""``python -m trusted_ledger.testing.sim``: the soak command (see run.main)."""

import sys

from trusted_ledger.testing.sim.run import main

sys.exit(main())
