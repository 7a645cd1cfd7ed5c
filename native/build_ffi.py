"""cffi build script (out-of-line API mode) for ``trusted_ledger.hashing._native``.

The C declarations come from ``native/tl_hash.h`` itself, so the binding cannot drift from
the header: comments and preprocessor lines are stripped, and every ``#define TL_*`` constant
is declared as ``#define TL_X ...`` so that cffi takes its value from the C compiler.
"""

from __future__ import annotations

import re
from pathlib import Path

from cffi import FFI

NATIVE_DIR = Path(__file__).resolve().parent
ROOT = NATIVE_DIR.parent
HEADER = NATIVE_DIR / "tl_hash.h"


def _package_version() -> str:
    text = (ROOT / "src" / "trusted_ledger" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError("src/trusted_ledger/_version.py has no __version__ line")
    return match.group(1)


def _cdef_from_header(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", "", text)
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#define TL_") and not stripped.startswith("#define TL_HASH_H"):
            out.append(f"#define {stripped.split()[1]} ...")
        elif stripped.startswith("#") or stripped in {'extern "C" {', "}"}:
            continue
        else:
            out.append(line)
    return "\n".join(out)


def _sources() -> list[str]:
    # Relative paths: setuptools refuses absolute source paths in some versions.
    return sorted(str(p.relative_to(ROOT)) for p in NATIVE_DIR.glob("*.c"))


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header(HEADER.read_text(encoding="utf-8")))
ffibuilder.set_source(
    "trusted_ledger.hashing._native",
    '#include "tl_hash.h"\n',
    sources=_sources(),
    include_dirs=[str(NATIVE_DIR.relative_to(ROOT))],
    define_macros=[("TL_BUILD_VERSION", f'"{_package_version()}"')],
    extra_compile_args=["-O3", "-std=gnu11", "-Wall", "-Wextra", "-fvisibility=hidden"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
