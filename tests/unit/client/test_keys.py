"""Client key files: written private from the start, never overwritten, refused when exposed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trusted_ledger.client.keys import (
    default_key_dir,
    load_signing_key,
    resolve_account,
    resolve_key,
    write_key_files,
)
from trusted_ledger.errors import InvalidInput, KeyFileError, KeyFileExists
from trusted_ledger.txn import SigningKey


def test_written_files_round_trip_with_private_modes(key_dir: Path) -> None:
    key = SigningKey.generate()
    files = write_key_files(key_dir, "alice", key)
    assert stat.S_IMODE(files.private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert files.private_path.read_text().strip() == key.secret_hex()
    assert files.public_path.read_text().strip() == key.public_key_hex
    loaded = load_signing_key(files.private_path)
    assert loaded.public_key_hex == key.public_key_hex
    # Sawtooth-compatible: the .priv holds 64 hex chars and nothing else but a newline.
    assert len(files.private_path.read_bytes()) == 65


def test_private_mode_holds_even_with_a_permissive_umask(key_dir: Path) -> None:
    old = os.umask(0)
    try:
        files = write_key_files(key_dir, "bob", SigningKey.generate())
    finally:
        os.umask(old)
    assert stat.S_IMODE(files.private_path.stat().st_mode) == 0o600


def test_existing_key_is_never_overwritten_without_force(key_dir: Path) -> None:
    first = write_key_files(key_dir, "alice", SigningKey.generate())
    before = first.private_path.read_bytes()
    with pytest.raises(KeyFileExists, match="already exists") as caught:
        write_key_files(key_dir, "alice", SigningKey.generate())
    assert "--force" in str(caught.value)
    assert first.private_path.read_bytes() == before
    replacement = SigningKey.generate()
    write_key_files(key_dir, "alice", replacement, force=True)
    assert load_signing_key(first.private_path).public_key_hex == replacement.public_key_hex
    assert stat.S_IMODE(first.private_path.stat().st_mode) == 0o600
    assert not list(key_dir.glob("*.tmp"))


def test_orphan_public_file_blocks_keygen_and_leaves_no_private_file(key_dir: Path) -> None:
    key_dir.mkdir(parents=True)
    (key_dir / "carol.pub").write_text("02" + "ab" * 32 + "\n")
    with pytest.raises(KeyFileExists):
        write_key_files(key_dir, "carol", SigningKey.generate())
    assert not (key_dir / "carol.priv").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_readable_by_others_is_refused_with_the_fix(key_dir: Path, mode: int) -> None:
    files = write_key_files(key_dir, "alice", SigningKey.generate())
    files.private_path.chmod(mode)
    with pytest.raises(KeyFileError, match="group or others") as caught:
        load_signing_key(files.private_path)
    assert f"chmod 600 {files.private_path}" in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"abc\n", b"zz" * 32, b"00" * 32, b"ff" * 32, "é".encode() * 32, b"0" * 5000],
)
def test_malformed_key_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.priv"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError):
        load_signing_key(path)


def test_missing_key_names_keygen(key_dir: Path) -> None:
    with pytest.raises(KeyFileError, match="keygen"):
        resolve_key("nobody", key_dir)


def test_symlinked_key_file_is_refused(key_dir: Path, tmp_path: Path) -> None:
    files = write_key_files(key_dir, "alice", SigningKey.generate())
    link = tmp_path / "link.priv"
    link.symlink_to(files.private_path)
    with pytest.raises(KeyFileError):
        load_signing_key(link)


def test_resolve_key_by_name_or_path(key_dir: Path) -> None:
    files = write_key_files(key_dir, "alice", SigningKey.generate())
    by_name = resolve_key("alice", key_dir)
    by_path = resolve_key(str(files.private_path), Path("/nonexistent"))
    assert by_name.public_key_hex == by_path.public_key_hex == files.public_key_hex


def test_resolve_account_accepts_hex_or_key_names(key_dir: Path) -> None:
    files = write_key_files(key_dir, "alice", SigningKey.generate())
    assert resolve_account("alice", key_dir) == files.public_key_hex
    assert resolve_account(files.public_key_hex.upper(), key_dir) == files.public_key_hex
    files.public_path.unlink()  # falls back to deriving from the private key
    assert resolve_account("alice", key_dir) == files.public_key_hex
    with pytest.raises(InvalidInput, match="neither an account"):
        resolve_account("bob", key_dir)
    with pytest.raises(InvalidInput):
        resolve_account("04" + "ab" * 32, key_dir)


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "a/b", "a" * 65, "sp ace"])
def test_bad_key_names_are_refused(key_dir: Path, name: str) -> None:
    with pytest.raises(InvalidInput, match="key name"):
        write_key_files(key_dir, name, SigningKey.generate())


def test_default_key_dir_prefers_the_environment(tmp_path: Path) -> None:
    assert default_key_dir({"TL_KEY_DIR": str(tmp_path)}) == tmp_path
    assert default_key_dir({}) == Path("~/.trusted-ledger/keys").expanduser()
