"""HSM profiles: one TOML file per HSM family in ``hsm_profiles/``.

A profile says where the PKCS#11 module lives, how to log in, which key algorithms the
family supports, the key capabilities its templates need, the size of the session pool
and the bounds of the call queue, and the quirks an operator must know. Profiles marked
``tested = false`` are written from vendors' public documentation only.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trusted_ledger.custody.keyspec import KeyAlgorithm
from trusted_ledger.errors import HsmModuleNotFound, HsmProfileError

PROFILES_DIR_ENV = "TL_HSM_PROFILES_DIR"
_LOGIN_KINDS = ("user", "protected-auth")
_CAPABILITIES = ("sign", "verify", "encrypt", "decrypt")
SESSIONS_MAX = 64
QUEUE_DEPTH_MAX = 65536


@dataclass(frozen=True)
class HsmProfile:
    name: str
    description: str
    tested: bool
    module_paths: tuple[str, ...]
    login: str
    sessions: int
    queue_depth_max: int
    call_timeout_ms: int
    recovery_backoff_initial_ms: int
    recovery_backoff_max_ms: int
    algorithms: tuple[KeyAlgorithm, ...]
    default_algorithm: KeyAlgorithm
    capabilities: tuple[str, ...]
    provisioning: str
    quirks: tuple[str, ...]
    source: Path | None = None

    def module_path(self) -> str:
        """The first listed module file that exists (profiles list per-distribution paths)."""
        for path in self.module_paths:
            if Path(path).is_file():
                return path
        raise HsmModuleNotFound(
            f"PKCS#11 module for profile {self.name!r} not found at "
            + ", ".join(self.module_paths),
            hint="install the vendor's client package or pass --module PATH",
        )


def profiles_dir() -> Path:
    """Where profiles live: $TL_HSM_PROFILES_DIR, else the repository's ``hsm_profiles/``."""
    configured = os.environ.get(PROFILES_DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "hsm_profiles"


def available_profiles() -> list[str]:
    directory = profiles_dir()
    return sorted(p.stem for p in directory.glob("*.toml")) if directory.is_dir() else []


def load_profile(name_or_path: str) -> HsmProfile:
    """Load a profile by name (``softhsm2``) or by path to a ``.toml`` file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = profiles_dir() / f"{name_or_path}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = ", ".join(available_profiles()) or "none"
        raise HsmProfileError(
            f"no HSM profile {name_or_path!r} (looked at {path})",
            hint=f"known profiles: {known}",
        ) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HsmProfileError(f"profile {path} is not valid TOML: {exc}") from exc
    return parse_profile(document, source=path)


def parse_profile(document: dict[str, Any], *, source: Path | None = None) -> HsmProfile:
    """Validate a decoded profile document; every error names the offending key."""
    where = str(source) if source else "profile"
    module = _table(document, "module", where)
    pool = _table(document, "pool", where)
    keys = _table(document, "keys", where)
    quirks = document.get("quirks", {})
    algorithms = tuple(
        _algorithm(name, where) for name in _str_list(keys, "algorithms", where, "keys")
    )
    default = _algorithm(_str(keys, "default_algorithm", where, "keys"), where)
    if default not in algorithms:
        raise HsmProfileError(f"{where}: keys.default_algorithm is not in keys.algorithms")
    capabilities = tuple(_str_list(keys, "capabilities", where, "keys"))
    for capability in capabilities:
        if capability not in _CAPABILITIES:
            raise HsmProfileError(f"{where}: keys.capabilities has unknown {capability!r}")
    login = _str(module, "login", where, "module")
    if login not in _LOGIN_KINDS:
        raise HsmProfileError(f"{where}: module.login must be one of {_LOGIN_KINDS}")
    sessions = _int(pool, "sessions", where, 1, SESSIONS_MAX)
    backoff_initial = _int(pool, "recovery_backoff_initial_ms", where, 1, 60_000)
    return HsmProfile(
        name=_str(document, "name", where, ""),
        description=_str(document, "description", where, ""),
        tested=_bool(document, "tested", where),
        module_paths=tuple(_str_list(module, "paths", where, "module")),
        login=login,
        sessions=sessions,
        queue_depth_max=_int(pool, "queue_depth_max", where, 1, QUEUE_DEPTH_MAX),
        call_timeout_ms=_int(pool, "call_timeout_ms", where, 1, 600_000),
        recovery_backoff_initial_ms=backoff_initial,
        recovery_backoff_max_ms=_int(
            pool, "recovery_backoff_max_ms", where, backoff_initial, 600_000
        ),
        algorithms=algorithms,
        default_algorithm=default,
        capabilities=capabilities,
        provisioning=str(module.get("provisioning", "")),
        quirks=tuple(_str_list(quirks, "notes", where, "quirks")) if quirks else (),
        source=source,
    )


def _table(document: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = document.get(key)
    if not isinstance(value, dict):
        raise HsmProfileError(f"{where}: missing table [{key}]")
    return value


def _qualified(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def _str(table: dict[str, Any], key: str, where: str, name: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise HsmProfileError(f"{where}: {_qualified(name, key)} must be a non-empty string")
    return value


def _str_list(table: dict[str, Any], key: str, where: str, name: str) -> list[str]:
    value = table.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise HsmProfileError(f"{where}: {_qualified(name, key)} must be a non-empty string list")
    return value


def _int(table: dict[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise HsmProfileError(f"{where}: pool.{key} must be an integer in [{low}, {high}]")
    return value


def _bool(table: dict[str, Any], key: str, where: str) -> bool:
    value = table.get(key)
    if not isinstance(value, bool):
        raise HsmProfileError(f"{where}: {key} must be true or false")
    return value


def _algorithm(name: str, where: str) -> KeyAlgorithm:
    try:
        return KeyAlgorithm(name)
    except ValueError:
        known = ", ".join(a.value for a in KeyAlgorithm)
        raise HsmProfileError(f"{where}: unknown key algorithm {name!r} (known: {known})") from None
