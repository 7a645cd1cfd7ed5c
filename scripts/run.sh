#!/usr/bin/env bash
# The README's main command: a local consortium of four banks on embedded defaults.
# On the first run `net up` creates var/net (each member its own SoftHSM token with its node
# key, guard, chain and ports; a genesis certified by all four), then a demo workload of
# asset transfers runs through different members, and the consortium keeps running until
# Ctrl-C (which stops every member). A single node: `trusted-ledger node init/run`
# (docs/node.md).
set -euo pipefail
cd "$(dirname "$0")/.."
TL_DEMO_KEEP=1 exec ./scripts/net-demo.sh
