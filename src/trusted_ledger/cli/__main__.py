"""``python -m trusted_ledger.cli``: the same as the ``trusted-ledger`` command."""

import sys

from trusted_ledger.cli import main

sys.exit(main())
