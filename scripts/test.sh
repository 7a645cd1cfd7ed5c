#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, format, types, C tests (plain and under
# AddressSanitizer/UBSan), then pytest. Extra arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
VENV="${TL_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }

step "ruff check"
ruff check src tests bench native/build_ffi.py
step "ruff format --check"
ruff format --check src tests bench native/build_ffi.py
step "mypy (strict) on src/"
mypy

BUILD="${TL_BUILD_DIR:-$ROOT/build}"
step "C tests (release build)"
cmake -S "$ROOT" -B "$BUILD/release" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD/release" -j2 >/dev/null
ctest --test-dir "$BUILD/release" --output-on-failure
step "C tests (AddressSanitizer + UBSan build)"
cmake -S "$ROOT" -B "$BUILD/sanitize" -DCMAKE_BUILD_TYPE=Debug -DTL_SANITIZE=ON >/dev/null
cmake --build "$BUILD/sanitize" -j2 >/dev/null
ctest --test-dir "$BUILD/sanitize" --output-on-failure

step "pytest"
python -m pytest "$@"
