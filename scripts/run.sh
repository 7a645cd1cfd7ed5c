#!/usr/bin/env bash
# The README's main command: a working single-node ledger on embedded defaults.
# Creates var/node (its own SoftHSM token, node key, guard, genesis) on the first run, then
# serves it on http://127.0.0.1:8008 until Ctrl-C. Every later run reuses the same node.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
NODE_DIR="${TL_NODE_DIR:-var/node}"
CLI=.venv/bin/trusted-ledger
if [ ! -f "$NODE_DIR/node.toml" ]; then
    if [ -d "$NODE_DIR" ] && [ -n "$(ls -A "$NODE_DIR")" ]; then
        echo "run.sh: $NODE_DIR exists without node.toml (an interrupted init); remove it and rerun" >&2
        exit 1
    fi
    "$CLI" node init --dir "$NODE_DIR"
fi
cat <<HELP
In another terminal, as a user of the ledger:
  $CLI asset create USD --kind currency --decimals 2 --key $NODE_DIR/keys/admin.priv
  $CLI keygen alice
  $CLI asset issue USD --to alice --amount 100.00 --key $NODE_DIR/keys/admin.priv
  $CLI asset balance USD --key alice
  $CLI block list
HELP
exec "$CLI" node run --dir "$NODE_DIR"
