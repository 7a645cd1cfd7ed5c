#!/usr/bin/env python3
"""Regenerate the Python protobuf modules and their mypy stubs from ``proto/*.proto``.

    python scripts/gen_protos.py            # rewrite src/trusted_ledger/txn/protos/*_pb2.py(i)
    python scripts/gen_protos.py --check    # exit 1 if the committed files are stale
    python scripts/gen_protos.py --out DIR  # write into DIR instead (used by the tests)

Needs grpcio-tools (for protoc) and mypy-protobuf (for ``protoc-gen-mypy``) in the running
interpreter's environment. The output depends on their versions; the committed files were made
with the versions pinned by the dev environment, and a test fails when regenerating differs.

The ``.proto`` files import each other by bare file name, as Sawtooth's do, so they compile
with any protoc without path mapping. protoc turns such an import into a top-level Python
import (``import transaction_pb2``); this script rewrites those lines to import from our
package, the only change made to protoc's output.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "src" / "trusted_ledger" / "txn" / "protos"
PACKAGE = "trusted_ledger.txn.protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi")


def _mypy_plugin() -> str:
    # The plugin is a console script installed next to the interpreter, not necessarily on PATH.
    beside = Path(sys.executable).parent / "protoc-gen-mypy"
    if beside.exists():
        return str(beside)
    found = shutil.which("protoc-gen-mypy")
    if found is None:
        sys.exit("protoc-gen-mypy not found: install mypy-protobuf (pip install -e '.[dev]')")
    return found


def _rewrite_imports(path: Path, module_names: set[str]) -> None:
    text = path.read_text(encoding="utf-8")

    def repl(match: re.Match[str]) -> str:
        module, alias = match.group(1), match.group(2)
        if module not in module_names:
            return match.group(0)
        return f"from {PACKAGE} import {module} as {alias}"

    path.write_text(
        re.sub(r"^import (\w+_pb2) as (\w+)$", repl, text, flags=re.MULTILINE), encoding="utf-8"
    )


def generate(out_dir: Path) -> list[Path]:
    """Run protoc over every ``proto/*.proto`` into ``out_dir``; return the files written."""
    protos = sorted(PROTO_DIR.glob("*.proto"))
    if not protos:
        sys.exit(f"no .proto files under {PROTO_DIR}")
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={_mypy_plugin()}",
        f"--mypy_out={out_dir}",
        *(p.name for p in protos),
    ]
    # protoc-gen-mypy reports each file it writes on stderr; show protoc's output only on failure.
    # The command is built from this file's own constants and the files in proto/.
    done = subprocess.run(command, cwd=PROTO_DIR, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        sys.exit(f"protoc failed ({done.returncode}):\n{done.stderr}")
    module_names = {p.stem + "_pb2" for p in protos}
    written = sorted(p for p in out_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES))
    for path in written:
        _rewrite_imports(path, module_names)
    return written


def _stale_files(fresh_dir: Path) -> list[str]:
    fresh = {p.name for p in fresh_dir.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}
    committed = {p.name for p in OUT_DIR.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}
    stale = sorted(fresh ^ committed)
    stale += sorted(
        name
        for name in fresh & committed
        if not filecmp.cmp(fresh_dir / name, OUT_DIR / name, shallow=False)
    )
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write here instead of src/")
    parser.add_argument("--check", action="store_true", help="fail if committed files differ")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            stale = _stale_files(Path(tmp))
        if stale:
            print("stale generated protobuf files: " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    generate(args.out if args.out is not None else OUT_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
