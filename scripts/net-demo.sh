#!/usr/bin/env bash
# A local consortium of four banks, a workload of asset transfers between the banks' accounts
# sent through different members' APIs, and what it looked like: heights, finality, logs.
#
# Creates the consortium in var/net on the first run (TL_NET_DIR to choose another; each
# member its own SoftHSM token, chain and ports), starts it with `net up`, and stops it with
# `net down` at the end, also on error or Ctrl-C. TL_DEMO_TRANSFERS sets the transfers per
# bank (default 25). With TL_DEMO_KEEP=1 (what `make run` sets) the consortium keeps running
# after the demo until Ctrl-C. docs/local-consortium.md explains the layout and the commands.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
NET_DIR="${TL_NET_DIR:-var/net}"
TRANSFERS="${TL_DEMO_TRANSFERS:-25}"
PY=.venv/bin/python
CLI=.venv/bin/trusted-ledger

"$CLI" net up --dir "$NET_DIR" --nodes 4
trap '"$CLI" net down --dir "$NET_DIR"' EXIT

echo
echo "== workload: USD issued to four banks, then each bank pays the next through its own member"
"$PY" - "$NET_DIR" "$TRANSFERS" <<'PY'
import statistics
import sys
import time
from pathlib import Path

from trusted_ledger.client.asset import AssetClient, format_amount
from trusted_ledger.client.http import LedgerClient
from trusted_ledger.client.keys import load_signing_key
from trusted_ledger.node.consortium_init import local_members
from trusted_ledger.txn import SigningKey

net_dir, transfers = Path(sys.argv[1]), int(sys.argv[2])
members = local_members(net_dir)
clients = [LedgerClient(m.api_url, timeout_s=30) for m in members]
admin = AssetClient(clients[0], load_signing_key(net_dir / "keys" / "admin.priv"))
code = f"USD{int(time.time()) % 100000}"  # a new asset class per run: reruns never clash


def committed(client: LedgerClient, ids: list[str], what: str) -> None:
    reports = client.wait_committed(ids, timeout_s=60)
    bad = [r for r in reports if r.status != "COMMITTED"]
    if bad:
        sys.exit(f"{what}: {len(bad)} of {len(ids)} not committed, e.g. {bad[0]}")


committed(clients[0], [admin.create(code, "currency", 2)], "create")
banks = [AssetClient(client, SigningKey.generate()) for client in clients]
issued = [admin.issue(code, bank.account, 1_000_00) for bank in banks]
committed(clients[0], issued, "issue")
print(f"{code}: 1000.00 issued to each of {', '.join(m.name for m in members)} via {members[0].name}")

# Each bank submits to ITS member; the batch reaches the proposer by gossip.
latencies: list[float] = []
started = time.monotonic()
submitted: list[tuple[int, list[str], float]] = []
for _ in range(transfers):
    for index, bank in enumerate(banks):
        payee = banks[(index + 1) % len(banks)]
        sent = time.monotonic()
        amount = (index + 1) * 1_00  # bank-a pays 1.00 a time, bank-d 4.00: balances move
        submitted.append((index, [bank.transfer(code, payee.account, amount)], sent))
for index, ids, sent in submitted:
    committed(clients[index], ids, "transfer")
    latencies.append(time.monotonic() - sent)
elapsed = time.monotonic() - started
count = len(submitted)
print(f"{count} transfers committed in {elapsed:.2f} s ({count / elapsed:.0f}/s)")
latencies.sort()
print(
    f"client-seen finality (submit -> COMMITTED, upper bound): p50 "
    f"{statistics.median(latencies) * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
)

print("balances, each read from a different member:")
total = 0
for index, bank in enumerate(banks):
    reader = AssetClient(clients[(index + 2) % len(clients)], bank.signing_key)
    units, _ = reader.balance(code)
    total += units
    print(f"  {members[index].name}'s account  {format_amount(units, 2):>10} USD")
print(f"  total               {format_amount(total, 2):>10} USD (4000.00 issued)")

blocks = clients[-1].blocks(limit=8)
print(f"newest blocks at {members[-1].name} (block time = proposer's timestamp):")
previous = None
for block in reversed(blocks):
    header = block["header"]
    stamp = int(header["timestamp_ms"])
    gap = "" if previous is None else f"  +{stamp - previous} ms"
    previous = stamp
    print(
        f"  #{header['block_num']:<5} {block['header_signature'][:16]}  "
        f"{len(header['batch_ids']):>4} batches  votes {len(block['certificate']['votes'])}{gap}"
    )
for client in clients:
    client.close()
PY

echo
echo "== net status"
"$CLI" net status --dir "$NET_DIR"
echo
echo "logs: $NET_DIR/bank-*/node.log (JSON lines); key usage trails: $NET_DIR/bank-*/audit/"
if [ "${TL_DEMO_KEEP:-0}" = "1" ]; then
    cat <<HELP

The consortium keeps running (Ctrl-C stops it). As a user of the ledger, in another terminal:
  $CLI keygen alice
  $CLI asset create EUR --kind currency --decimals 2 --key $NET_DIR/keys/admin.priv --url http://127.0.0.1:7800
  $CLI asset issue EUR --to alice --amount 50.00 --key $NET_DIR/keys/admin.priv --url http://127.0.0.1:7801
  $CLI asset balance EUR --key alice --url http://127.0.0.1:7803
  $CLI net status --dir $NET_DIR
HELP
    while true; do sleep 3600; done
fi
