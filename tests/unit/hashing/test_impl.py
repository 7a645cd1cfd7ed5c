"""Run-time SHA-256 implementation selection, and the build/version check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trusted_ledger import __version__, hashing
from trusted_ledger.hashing import native


def _cpu_has_sha_ni() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii") as cpuinfo:
            return any(line.startswith("flags") and " sha_ni" in line for line in cpuinfo)
    except OSError:
        return False


def test_portable_is_always_available() -> None:
    assert hashing.sha256_impl_available("portable")


def test_sha_ni_detection_matches_the_kernel() -> None:
    assert hashing.sha256_impl_available("sha-ni") == _cpu_has_sha_ni()


def test_default_is_the_fastest_available() -> None:
    # A fresh process, so no earlier test's forcing leaks in.
    code = "from trusted_ledger import hashing; print(hashing.sha256_impl())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("sha-ni" if _cpu_has_sha_ni() else "portable")


def test_forcing_the_fallback_changes_the_path_not_the_result() -> None:
    before = hashing.sha256_impl()
    data = bytes(range(256)) * 40
    try:
        results = {}
        for impl in ("portable", "sha-ni"):
            if not hashing.sha256_impl_available(impl):
                continue
            hashing.set_sha256_impl(impl)
            assert hashing.sha256_impl() == impl
            results[impl] = (hashing.sha256(data), hashing.merkle_root_fixed(data, 64))
        assert len(set(results.values())) == 1
    finally:
        hashing.set_sha256_impl(before)


def test_unavailable_impl_is_refused() -> None:
    if _cpu_has_sha_ni():
        pytest.skip("this CPU has SHA-NI, so nothing is unavailable")
    with pytest.raises(Exception, match="not available"):
        hashing.set_sha256_impl("sha-ni")


def test_extension_is_stamped_with_the_package_version() -> None:
    built = native.ffi.string(native.lib.tl_build_version()).decode()
    assert built == __version__
    assert native.lib.tl_abi_version() == native.EXPECTED_ABI_VERSION


def test_stale_extension_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "__version__", "0.0.0-stale")
    with pytest.raises(native.NativeExtensionError, match="does not match"):
        native._verify_build()
