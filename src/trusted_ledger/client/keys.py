"""Client key files: ``NAME.priv`` (64 hex chars, mode 0600) and ``NAME.pub`` (66 hex chars).

The layout is Sawtooth's (``sawtooth keygen``), so existing key files work unchanged. Client
keys are software secp256k1 keys held by the people who submit transactions; node keys live
in the HSM and never pass through here.

A private key file is written with ``O_EXCL`` and mode 0600 from the start, so there is no
moment when another user could read it, and a second ``keygen`` cannot silently destroy a
key that may hold funds. Loading refuses a file that group or others may read, as OpenSSH
does: a key that others could have copied must not be trusted to sign payments.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trusted_ledger.errors import InvalidInput, KeyFileError, KeyFileExists
from trusted_ledger.processing.families.asset import account_field
from trusted_ledger.txn import SigningKey

KEY_DIR_ENV = "TL_KEY_DIR"
PRIVATE_SUFFIX = ".priv"
PUBLIC_SUFFIX = ".pub"
key_file_bytes_max = 1024
"""A key file holds 64 or 66 hex chars and a newline; anything much larger is not one."""
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644
_DIR_MODE = 0o700


@dataclass(frozen=True, slots=True)
class KeyFiles:
    private_path: Path
    public_path: Path
    public_key_hex: str


def default_key_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$TL_KEY_DIR``, else ``~/.trusted-ledger/keys``."""
    env = os.environ if environ is None else environ
    configured = env.get(KEY_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path("~/.trusted-ledger/keys").expanduser()


def check_key_name(name: str) -> str:
    if not _NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"key name {name!r} must be 1-64 of A-Z a-z 0-9 _ . - not starting with . or -"
        )
    return name


def write_key_files(key_dir: Path, name: str, key: SigningKey, *, force: bool = False) -> KeyFiles:
    """Write ``NAME.priv`` and ``NAME.pub`` in ``key_dir`` (created with mode 0700).

    Without ``force`` an existing file of either name is an error and nothing is written.
    With ``force`` the files are replaced atomically (written aside, then renamed), so a
    crash leaves the old key or the new one, never half of one.
    """
    check_key_name(name)
    key_dir.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    private_path = key_dir / f"{name}{PRIVATE_SUFFIX}"
    public_path = key_dir / f"{name}{PUBLIC_SUFFIX}"
    secret = (key.secret_hex() + "\n").encode("ascii")
    public = (key.public_key_hex + "\n").encode("ascii")
    if force:
        _replace_file(private_path, secret, _PRIVATE_MODE)
        _replace_file(public_path, public, _PUBLIC_MODE)
        return KeyFiles(private_path, public_path, key.public_key_hex)
    if public_path.exists():
        raise _exists(public_path, name)
    _create_file(private_path, secret, _PRIVATE_MODE, name)
    try:
        _create_file(public_path, public, _PUBLIC_MODE, name)
    except BaseException:
        private_path.unlink()  # ours, just created: leave no half-written key pair behind
        raise
    return KeyFiles(private_path, public_path, key.public_key_hex)


def _exists(path: Path, name: str) -> KeyFileExists:
    return KeyFileExists(
        f"key file {path} already exists",
        hint=f"choose another name, or pass --force to replace key {name!r} (its funds "
        "stay with the old key)",
    )


def _create_file(path: Path, data: bytes, mode: int, name: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError as exc:
        raise _exists(path, name) from exc
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from exc
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from exc


def load_signing_key(path: Path) -> SigningKey:
    """The key in a ``.priv`` file; refuses files others may read and malformed content."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"no key file {path}", hint="create one with `trusted-ledger keygen NAME`"
        ) from exc
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)  # of the file opened, not of whatever the path names later
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if os.name == "posix" and info.st_mode & 0o077:
            raise KeyFileError(
                f"key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); it is refused",
                hint=f"chmod 600 {path}, and consider the key exposed if others could read it",
            )
        data = os.read(fd, key_file_bytes_max + 1)
    finally:
        os.close(fd)
    if len(data) > key_file_bytes_max:
        raise KeyFileError(f"key file {path} is larger than a key file can be")
    try:
        return SigningKey.from_hex(data.decode("ascii"))
    except (UnicodeDecodeError, InvalidInput) as exc:
        raise KeyFileError(
            f"key file {path} is malformed: it must hold one secp256k1 private key as 64 hex chars",
            hint=str(exc) if isinstance(exc, InvalidInput) else "it holds non-ASCII bytes",
        ) from exc


def resolve_key(spec: str, key_dir: Path) -> SigningKey:
    """``--key``: a path to a ``.priv`` file, or a NAME in ``key_dir``."""
    path = Path(spec).expanduser()
    if spec.endswith(PRIVATE_SUFFIX) or os.sep in spec or "/" in spec:
        return load_signing_key(path)
    check_key_name(spec)
    return load_signing_key(key_dir / f"{spec}{PRIVATE_SUFFIX}")


def parse_account(text: str) -> str:
    """A compressed secp256k1 public key as the asset family names accounts (66 hex)."""
    return account_field({"account": text.strip().lower()}, "account")


def resolve_account(spec: str, key_dir: Path) -> str:
    """An account given as 66 hex chars, or as the NAME of a key in ``key_dir``."""
    candidate = spec.strip().lower()
    if len(candidate) == 66 and candidate[:2] in ("02", "03"):
        return parse_account(candidate)
    if not _NAME_PATTERN.fullmatch(spec):
        raise InvalidInput(
            f"{spec!r} is neither an account (66 hex chars of a compressed public key) nor a "
            "key name"
        )
    public_path = key_dir / f"{spec}{PUBLIC_SUFFIX}"
    try:
        data = public_path.read_bytes()[:key_file_bytes_max]
    except FileNotFoundError:
        private_path = key_dir / f"{spec}{PRIVATE_SUFFIX}"
        if private_path.exists():
            return load_signing_key(private_path).public_key_hex
        raise InvalidInput(
            f"{spec!r} is neither an account (66 hex chars) nor a key in {key_dir}",
            hint="give the account's public key, or --key-dir where its key files are",
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {public_path}: {exc.strerror}") from exc
    try:
        return parse_account(data.decode("ascii"))
    except (UnicodeDecodeError, InvalidInput) as exc:
        raise KeyFileError(f"public key file {public_path} is malformed") from exc
