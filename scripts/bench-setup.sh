#!/usr/bin/env bash
# What the benchmarks need beyond the project's set-up: etcd (Debian's etcd-server), the
# replication reference bench/consortium.py runs beside the consortium. Not needed by the
# tests, so scripts/setup.sh does not install it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if ! command -v etcd >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q etcd-server
fi
