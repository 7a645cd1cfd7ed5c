"""Module-level operations for operators: inspect a module (``hsm doctor``) and initialise
a development token (``hsm init-token``). Both run inside the module's gate.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

import pkcs11
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11

from trusted_ledger.custody.gate import gate_for_module
from trusted_ledger.custody.pin import Pin
from trusted_ledger.custody.profiles import HsmProfile
from trusted_ledger.custody.token import required_mechanisms
from trusted_ledger.errors import (
    ConfigurationError,
    HsmModuleError,
    HsmModuleNotFound,
    InvalidInput,
    PinRejected,
)

TOKEN_LABEL_BYTES = 32
TOOL_TIMEOUT_S = 120
_CKR_OK = 0


@dataclass(frozen=True)
class TokenReport:
    slot_id: int
    label: str
    serial: str
    model: str
    manufacturer: str
    initialized: bool
    user_pin_initialized: bool
    user_pin_locked: bool
    mechanisms_missing: tuple[str, ...]


@dataclass
class ModuleReport:
    module_path: str
    manufacturer: str
    description: str
    cryptoki_version: str
    library_version: str
    slots: int
    tokens: list[TokenReport] = field(default_factory=list)
    required: tuple[str, ...] = ()


def inspect_module(profile: HsmProfile, module_path: str | None = None) -> ModuleReport:
    """Everything ``hsm doctor`` prints: no PIN needed, nothing changed on the tokens."""
    path = module_path or profile.module_path()
    gate = gate_for_module(path, queue_depth_max=profile.queue_depth_max)
    return gate.call(lambda: _in_gate_inspect(profile, path), timeout_s=60)


def _load(path: str) -> Any:
    if not os.path.isfile(path):
        raise HsmModuleNotFound(f"PKCS#11 module {path} does not exist")
    try:
        return pkcs11.lib(path)
    except p11.PKCS11Error as exc:
        raise HsmModuleNotFound(
            f"cannot load PKCS#11 module {path}: {exc}",
            hint="check the vendor library is installed and its dependencies resolve (ldd)",
        ) from None


def _in_gate_inspect(profile: HsmProfile, path: str) -> ModuleReport:
    lib = _load(path)
    needed = required_mechanisms(profile.algorithms)
    report = ModuleReport(
        module_path=path,
        manufacturer=lib.manufacturer_id,
        description=lib.library_description,
        cryptoki_version="{}.{}".format(*lib.cryptoki_version),
        library_version="{}.{}".format(*lib.library_version),
        slots=0,
        required=tuple(sorted(needed)),
    )
    slots = list(lib.get_slots(token_present=True))
    report.slots = len(slots)
    for slot in slots:
        token = slot.get_token()
        offered = set(slot.get_mechanisms())
        flags = token.flags
        report.tokens.append(
            TokenReport(
                slot_id=int(slot.slot_id),
                label=str(token.label),
                serial=token.serial.decode("ascii", "replace").strip(),
                model=str(token.model),
                manufacturer=str(token.manufacturer_id),
                initialized=bool(flags & TokenFlag.TOKEN_INITIALIZED),
                user_pin_initialized=bool(flags & TokenFlag.USER_PIN_INITIALIZED),
                user_pin_locked=bool(flags & TokenFlag.USER_PIN_LOCKED),
                mechanisms_missing=tuple(
                    sorted(name for name, mech in needed.items() if mech not in offered)
                ),
            )
        )
    return report


def init_token(
    profile: HsmProfile, label: str, so_pin: Pin, user_pin: Pin, module_path: str | None = None
) -> None:
    """Create a development token: SoftHSM through C_InitToken/C_InitPIN on a free slot,
    TPM through tpm2_ptool (which takes PINs as arguments: development machines only)."""
    if not label or len(label.encode("utf-8")) > TOKEN_LABEL_BYTES:
        raise InvalidInput(f"token label must be 1..{TOKEN_LABEL_BYTES} bytes")
    if profile.provisioning == "tpm2_ptool":
        _init_tpm_token(label, so_pin, user_pin)
        return
    if profile.provisioning != "pkcs11":
        raise ConfigurationError(
            f"profile {profile.name!r} does not support token initialisation",
            hint="initialise tokens with the vendor's tools",
        )
    path = module_path or profile.module_path()
    gate = gate_for_module(path, queue_depth_max=profile.queue_depth_max)
    gate.call(lambda: _in_gate_init_token(path, label, so_pin, user_pin), timeout_s=60)


def _in_gate_init_token(path: str, label: str, so_pin: Pin, user_pin: Pin) -> None:
    lib = _load(path)
    for slot in lib.get_slots(token_present=True):
        if str(slot.get_token().label) == label:
            raise InvalidInput(f"a token labelled {label!r} already exists")
    free = [
        slot
        for slot in lib.get_slots(token_present=True)
        if not slot.get_token().flags & TokenFlag.TOKEN_INITIALIZED
    ]
    if not free:
        raise ConfigurationError("the module has no free (uninitialised) slot")
    slot_id = int(free[0].slot_id)
    # python-pkcs11 has no C_InitToken; the module is already initialised by it in this
    # process, so calling the exported function directly inside the gate is safe.
    module = ctypes.CDLL(path)
    init = module.C_InitToken
    init.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    init.restype = ctypes.c_ulong
    so_bytes = so_pin.reveal().encode("utf-8")
    padded_label = label.encode("utf-8").ljust(TOKEN_LABEL_BYTES, b" ")
    status = init(slot_id, so_bytes, len(so_bytes), padded_label)
    if status != _CKR_OK:
        raise HsmModuleError(f"C_InitToken failed with CKR {status:#x}")
    token = lib.get_token(token_label=label)
    try:
        session = token.open(rw=True, so_pin=so_pin.reveal())
    except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange) as exc:
        raise PinRejected(f"SO PIN refused ({type(exc).__name__})") from None
    try:
        session.init_pin(user_pin.reveal())
    finally:
        session.close()


def _init_tpm_token(label: str, so_pin: Pin, user_pin: Pin) -> None:
    tool = shutil.which("tpm2_ptool")
    if tool is None:
        raise ConfigurationError(
            "tpm2_ptool not found", hint="apt-get install libtpm2-pkcs11-tools"
        )
    # tpm2_ptool finds its store through TPM2_PKCS11_STORE and the TPM through TPM2TOOLS_TCTI
    # (taken from TPM2_PKCS11_TCTI when unset).
    env = dict(os.environ)
    if "TPM2_PKCS11_TCTI" in env:
        env.setdefault("TPM2TOOLS_TCTI", env["TPM2_PKCS11_TCTI"])
    listing = _run_tool([tool, "listprimaries"], env)
    if "id:" not in listing:
        _run_tool([tool, "init"], env)
    listing = _run_tool([tool, "listprimaries"], env)
    primary = listing.split("id:", 1)[1].split()[0]
    _run_tool(
        [
            tool, "addtoken", f"--pid={primary}", f"--label={label}",
            f"--sopin={so_pin.reveal()}", f"--userpin={user_pin.reveal()}",
        ],
        env,
        secret=True,
    )  # fmt: skip


def _run_tool(argv: list[str], env: dict[str, str], *, secret: bool = False) -> str:
    shown = argv[:2] if secret else argv  # never echo PIN arguments
    try:
        done = subprocess.run(  # noqa: S603 - fixed tool path, no shell
            argv, env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise HsmModuleError(f"{' '.join(shown)} timed out") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigurationError(f"{' '.join(shown)} failed: {last}")
    return done.stdout
