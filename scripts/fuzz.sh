#!/usr/bin/env bash
# The long fuzz campaign (docs/reliability.md, "Fuzzing"): every target in tests/fuzz with
# EXAMPLES inputs each (default 5000), the per-target counts written to REPORT.
#   scripts/fuzz.sh [EXAMPLES] [REPORT]    (REPORT defaults to build/fuzz-report.json)
# CI runs the same targets with 200 inputs each as part of `pytest tests/fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-5000}"
report="${2:-build/fuzz-report.json}"
mkdir -p "$(dirname "$report")"
if [ -f .venv/bin/activate ]; then
    # shellcheck disable=SC1091
    source .venv/bin/activate
fi
# A hang shows as a deadline failure; 5 s per input leaves room for a loaded machine.
export TL_FUZZ_EXAMPLES="$examples" TL_FUZZ_REPORT="$report"
export TL_FUZZ_DEADLINE_MS="${TL_FUZZ_DEADLINE_MS:-5000}"
exec python -m pytest -q tests/fuzz -p no:cacheprovider
