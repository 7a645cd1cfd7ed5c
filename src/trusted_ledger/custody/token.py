"""A logged-in token: its session pool, cached key handles, key generation, inventory, and
recovery when the device goes away.

Every method whose name starts with ``_in_gate`` runs inside the module's gate (see
``gate.py``: one call into a module at a time) and is the only code touching python-pkcs11
objects. Public methods pass them through the gate and return plain data.

Login is per token and shared by all its sessions, and python-pkcs11's ``Session.close``
logs out when the session logged in: so the pool logs in on its first session only, keeps
that session open for its whole life, and never closes sessions one by one.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.util.ec import encode_named_curve_parameters

from trusted_ledger.custody.gate import gate_for_module
from trusted_ledger.custody.inventory import (
    POLICY_ATTRIBUTES,
    KeyInfo,
    check_key_policy,
    unwrap_ec_point,
)
from trusted_ledger.custody.keyspec import KeyAlgorithm, PublicKey
from trusted_ledger.custody.pin import Pin
from trusted_ledger.custody.profiles import HsmProfile
from trusted_ledger.errors import (
    ConfigurationError,
    HsmModuleError,
    HsmModuleNotFound,
    HsmUnavailable,
    InvalidInput,
    KeyNotFound,
    MechanismUnsupported,
    PinRejected,
    TokenNotFound,
    TrustedLedgerError,
)
from trusted_ledger.observability.logging import get_logger
from trusted_ledger.observability.metrics import (
    CUSTODY_MODULE_ERRORS_TOTAL,
    CUSTODY_RECOVERIES_TOTAL,
)

T = TypeVar("T")
_log = get_logger("custody.token")

# Errors after which the sessions (or the whole module) are gone: re-initialise.
LOST_TOKEN_ERRORS: tuple[type[Exception], ...] = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.DeviceMemory,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.GeneralError,
    p11.UserNotLoggedIn,
    p11.FunctionFailed,
    # A cached handle that stopped naming its object means the token's contents changed
    # under us (SoftHSM: token directory replaced): start again from a fresh module.
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
)
_PIN_ERRORS = (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange, p11.PinExpired, p11.PinLocked)
_MECHANISM_ERRORS = (
    p11.MechanismInvalid,
    p11.MechanismParamInvalid,
    p11.FunctionNotSupported,
    p11.DomainParamsInvalid,
    p11.KeySizeRange,
)
_KEYGEN_MECHANISM = {
    KeyAlgorithm.EC_P256: Mechanism.EC_KEY_PAIR_GEN,
    KeyAlgorithm.EC_SECP256K1: Mechanism.EC_KEY_PAIR_GEN,
    KeyAlgorithm.ED25519: Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
}
_SIGN_MECHANISM = {
    KeyAlgorithm.EC_P256: Mechanism.ECDSA,
    KeyAlgorithm.EC_SECP256K1: Mechanism.ECDSA,
    KeyAlgorithm.ED25519: Mechanism.EDDSA,
}
_CAPABILITY_FLAGS = {
    "sign": MechanismFlag.SIGN,
    "verify": MechanismFlag.VERIFY,
    "encrypt": MechanismFlag.ENCRYPT,
    "decrypt": MechanismFlag.DECRYPT,
}
_ATTRIBUTE_CODES = {
    "token": Attribute.TOKEN,
    "private": Attribute.PRIVATE,
    "sensitive": Attribute.SENSITIVE,
    "extractable": Attribute.EXTRACTABLE,
    "local": Attribute.LOCAL,
    "always_sensitive": Attribute.ALWAYS_SENSITIVE,
    "never_extractable": Attribute.NEVER_EXTRACTABLE,
    "sign": Attribute.SIGN,
}
KEY_ID_BYTES = 8
LABEL_CHARS_MAX = 64

# Bumped whenever a module is finalised and initialised again, so that every pool on that
# module drops its handles: SoftHSM reuses handle numbers, so a stale handle would silently
# name another object. Read and written inside the module's gate only.
_module_generation: dict[str, int] = {}


def required_mechanisms(algorithms: tuple[KeyAlgorithm, ...]) -> dict[str, Mechanism]:
    """The mechanisms a profile needs, by a name an operator can look up."""
    needed: dict[str, Mechanism] = {}
    for algorithm in algorithms:
        for mechanism in (_KEYGEN_MECHANISM[algorithm], _SIGN_MECHANISM[algorithm]):
            needed[f"CKM_{mechanism.name}"] = mechanism
    return needed


class TokenPool:
    """Sessions on one token, logged in once, used only inside the module's gate."""

    def __init__(
        self,
        profile: HsmProfile,
        token_label: str,
        pin: Pin | None,
        *,
        module_path: str | None = None,
        allow_unsafe_keys: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.token_label = token_label
        self.module_path = module_path or profile.module_path()
        self.allow_unsafe_keys = allow_unsafe_keys
        self._pin = pin
        self._clock = clock
        self._gate = gate_for_module(self.module_path, queue_depth_max=profile.queue_depth_max)
        self._timeout_s = profile.call_timeout_ms / 1000
        self._metric_module = profile.name
        # Gate-only state: python-pkcs11 objects never leave these fields.
        self._lib: Any = None
        self._sessions: list[Any] = []
        self._next_session = 0
        self._key_handles: dict[tuple[int, str], Any] = {}
        self._key_infos: dict[str, KeyInfo] = {}
        self._generation = -1
        self._backoff_ms = float(profile.recovery_backoff_initial_ms)
        self._next_attempt = 0.0
        self._down_reason: str | None = None
        self._gate.call(self._in_gate_connect, timeout_s=self._timeout_s)

    # --- public API (any thread) ------------------------------------------------------

    def sign(self, label: str, digest: bytes) -> tuple[KeyAlgorithm, bytes]:
        """Sign a 32-byte digest with the private key ``label``; the raw signature."""
        return self._run(lambda: self._in_gate_sign(label, digest))

    def key_info(self, label: str) -> KeyInfo:
        return self._run(lambda: self._in_gate_key_info(label))

    def list_keys(self) -> list[KeyInfo]:
        return self._run(self._in_gate_list_keys)

    def generate_key(self, label: str, algorithm: KeyAlgorithm) -> KeyInfo:
        return self._run(lambda: self._in_gate_generate(label, algorithm))

    def mechanisms(self) -> set[int]:
        return self._run(lambda: {int(m) for m in self._sessions[0].token.slot.get_mechanisms()})

    def time_raw_signing(self, label: str, digest: bytes, count: int, sessions: int) -> float:
        """Seconds for ``count`` bare python-pkcs11 signatures with this key, alternating over
        ``sessions`` sessions, in one gated call: the baseline bench/custody.py
        compares custody against (same key, same sessions, no queue, no audit)."""

        def loop() -> float:
            handles = [
                self._key_handles.get((index, label)) or self._in_gate_load_key(index, label)
                for index in range(min(sessions, len(self._sessions)))
            ]
            mechanism = _SIGN_MECHANISM[self._key_infos[label].algorithm]
            started = time.perf_counter()
            for i in range(count):
                handles[i % len(handles)].sign(digest, mechanism=mechanism)
            return time.perf_counter() - started

        return self._run(loop)

    @property
    def is_available(self) -> bool:
        return self._down_reason is None

    def close(self) -> None:
        """Log out and close every session (closing the login session logs out all)."""
        self._gate.call(self._in_gate_close, timeout_s=self._timeout_s)

    # --- inside the gate --------------------------------------------------------------

    def _run(self, operation: Callable[[], T]) -> T:
        return self._gate.call(lambda: self._in_gate_guarded(operation), timeout_s=self._timeout_s)

    def _in_gate_guarded(self, operation: Callable[[], T]) -> T:
        self._in_gate_ensure_connected()
        try:
            return operation()
        except LOST_TOKEN_ERRORS as exc:
            self._count_error(exc)
            self._in_gate_mark_down(exc)
            raise HsmUnavailable(
                f"token {self.token_label!r} lost ({type(exc).__name__}); re-initialising",
                hint="retry later; check the device if this persists",
            ) from None
        except p11.PKCS11Error as exc:
            self._count_error(exc)
            raise self._translated(exc) from None

    def _in_gate_connect(self) -> None:
        if not os.path.isfile(self.module_path):
            raise HsmModuleNotFound(
                f"PKCS#11 module {self.module_path} does not exist",
                hint="install the vendor library or fix --module / the profile's module.paths",
            )
        try:
            self._lib = pkcs11.lib(self.module_path)
        except p11.PKCS11Error as exc:
            raise HsmModuleNotFound(
                f"cannot load PKCS#11 module {self.module_path}: {exc}",
                hint="check the profile's module.paths and that the vendor library is installed",
            ) from None
        self._generation = _module_generation.setdefault(self.module_path, 0)
        self._in_gate_open_sessions()

    def _in_gate_open_sessions(self) -> None:
        try:
            token = self._lib.get_token(token_label=self.token_label)
        except p11.NoSuchToken:
            raise TokenNotFound(
                f"no token labelled {self.token_label!r} in module {self.module_path}",
                hint="list tokens with `trusted-ledger hsm doctor`; "
                "create one with `trusted-ledger hsm init-token`",
            ) from None
        except p11.MultipleTokensReturned:
            raise TokenNotFound(
                f"several tokens are labelled {self.token_label!r}",
                hint="give every token a unique label",
            ) from None
        try:
            login_session = token.open(rw=True, user_pin=self._pin_for_login())
        except _PIN_ERRORS as exc:
            self._count_error(exc)
            raise self._translated(exc) from None
        except p11.UserAlreadyLoggedIn:
            # Login is per process and token: a second pool would have its PIN go unchecked
            # and would log the first one out when closed.
            raise ConfigurationError(
                f"token {self.token_label!r} is already logged in by another pool here",
                hint="share one TokenPool per token in a process",
            ) from None
        sessions = [login_session]
        sessions.extend(token.open(rw=True) for _ in range(self.profile.sessions - 1))
        self._sessions = sessions
        self._next_session = 0
        self._down_reason = None

    def _pin_for_login(self) -> Any:
        if self.profile.login == "protected-auth":
            return pkcs11.PROTECTED_AUTH
        if self._pin is None:
            raise PinRejected(
                f"token {self.token_label!r} needs a PIN", hint="pass --pin-env or --pin-file"
            )
        return self._pin.reveal()

    def _in_gate_ensure_connected(self) -> None:
        current = _module_generation.get(self.module_path, 0)
        reinitialised_by_other_pool = current != self._generation
        if reinitialised_by_other_pool:
            # Every handle we hold is void; the module itself is fresh, so do not finalise
            # it again (that would void the other pool's sessions in turn, back and forth).
            self._in_gate_forget_state()
            self._generation = current
        if self._sessions:
            return
        now = self._clock()
        if now < self._next_attempt:
            raise HsmUnavailable(
                f"token {self.token_label!r} unavailable ({self._down_reason}); "
                f"next re-initialisation in {(self._next_attempt - now) * 1000:.0f} ms",
                hint="retry later",
            )
        try:
            if reinitialised_by_other_pool:
                self._in_gate_open_sessions()
            else:
                self._in_gate_reinitialise()
        except (TokenNotFound, p11.PKCS11Error) as exc:
            self._next_attempt = now + self._backoff_ms / 1000
            self._backoff_ms = min(self._backoff_ms * 2, self.profile.recovery_backoff_max_ms)
            self._down_reason = type(exc).__name__
            raise HsmUnavailable(
                f"token {self.token_label!r} still unavailable ({self._down_reason})",
                hint="retry later",
            ) from None
        self._backoff_ms = float(self.profile.recovery_backoff_initial_ms)
        CUSTODY_RECOVERIES_TOTAL.labels(module=self._metric_module).inc()
        _log.info("token_recovered", token=self.token_label, module=self.module_path)

    def _in_gate_reinitialise(self) -> None:
        """Finalise and initialise the module: the only way to get a fresh view of a token
        after the device was lost (sessions and handles from before are all void)."""
        if self._lib.initialized:
            try:
                self._lib.finalize()
            except p11.PKCS11Error as exc:
                _log.warning("finalize_failed", error=type(exc).__name__)
        self._generation = _module_generation.get(self.module_path, 0) + 1
        _module_generation[self.module_path] = self._generation
        self._lib.initialize()
        self._in_gate_open_sessions()

    def _in_gate_mark_down(self, exc: Exception) -> None:
        self._down_reason = type(exc).__name__
        self._in_gate_forget_state()
        self._next_attempt = self._clock() + self._backoff_ms / 1000
        _log.warning("token_lost", token=self.token_label, error=self._down_reason)

    def _in_gate_forget_state(self) -> None:
        # Dropped without C_CloseSession: after a device loss closing fails anyway, and
        # C_Finalize (done before reconnecting) releases them all.
        self._sessions = []
        self._key_handles.clear()
        self._key_infos.clear()

    def _in_gate_close(self) -> None:
        sessions, self._sessions = self._sessions, []
        self._key_handles.clear()
        for session in reversed(sessions):  # the login session last: it logs everyone out
            try:
                session.close()
            except p11.PKCS11Error as exc:
                _log.warning("session_close_failed", error=type(exc).__name__)
        self._down_reason = "closed"
        self._next_attempt = float("inf")

    def _in_gate_sign(self, label: str, digest: bytes) -> tuple[KeyAlgorithm, bytes]:
        index = self._next_session
        self._next_session = (index + 1) % len(self._sessions)
        handle = self._key_handles.get((index, label))
        if handle is None:
            handle = self._in_gate_load_key(index, label)
        algorithm = self._key_infos[label].algorithm
        raw = handle.sign(digest, mechanism=_SIGN_MECHANISM[algorithm])
        return algorithm, bytes(raw)

    def _in_gate_load_key(self, index: int, label: str) -> Any:
        session = self._sessions[index]
        try:
            handle = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
        except p11.NoSuchKey:
            raise KeyNotFound(
                f"no private key labelled {label!r} on token {self.token_label!r}",
                hint="list keys with `trusted-ledger keys list`",
            ) from None
        if label not in self._key_infos:
            info = self._in_gate_describe(session, handle)
            check_key_policy(label, info.attributes, allow_unsafe=self.allow_unsafe_keys)
            self._key_infos[label] = info
        self._key_handles[(index, label)] = handle
        return handle

    def _in_gate_key_info(self, label: str) -> KeyInfo:
        if label not in self._key_infos:
            self._in_gate_load_key(0, label)
        return self._key_infos[label]

    def _in_gate_list_keys(self) -> list[KeyInfo]:
        session = self._sessions[0]
        # Consume the search fully here: an unfinished search's finaliser calls the module.
        handles = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        infos = [self._in_gate_describe(session, handle) for handle in handles]
        return sorted(infos, key=lambda info: info.label)

    def _in_gate_describe(self, session: Any, private_key: Any) -> KeyInfo:
        label = str(private_key[Attribute.LABEL])
        key_id = bytes(private_key[Attribute.ID])
        algorithm = self._algorithm_of(private_key)
        attributes = {name: bool(private_key[code]) for name, code in _ATTRIBUTE_CODES.items()}
        assert tuple(attributes) == POLICY_ATTRIBUTES
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
        point = unwrap_ec_point(algorithm, bytes(public[Attribute.EC_POINT]))
        return KeyInfo(
            label=label,
            key_id=key_id.hex(),
            algorithm=algorithm,
            public_key=PublicKey.from_ec_point(algorithm, point),
            attributes=attributes,
        )

    @staticmethod
    def _algorithm_of(private_key: Any) -> KeyAlgorithm:
        key_type = private_key[Attribute.KEY_TYPE]
        if key_type == KeyType.EC_EDWARDS:
            return KeyAlgorithm.ED25519
        if key_type == KeyType.EC:
            params = bytes(private_key[Attribute.EC_PARAMS])
            for algorithm in (KeyAlgorithm.EC_P256, KeyAlgorithm.EC_SECP256K1):
                if params == encode_named_curve_parameters(algorithm.curve_name):
                    return algorithm
        raise InvalidInput(f"key type {key_type!r} is not one custody supports")

    def _in_gate_generate(self, label: str, algorithm: KeyAlgorithm) -> KeyInfo:
        if not label or len(label) > LABEL_CHARS_MAX:
            raise InvalidInput(f"key label must be 1..{LABEL_CHARS_MAX} characters")
        if algorithm not in self.profile.algorithms:
            raise MechanismUnsupported(
                f"profile {self.profile.name!r} does not support {algorithm.value}",
                hint="supported: " + ", ".join(a.value for a in self.profile.algorithms),
            )
        session = self._sessions[0]
        self._in_gate_require_mechanisms(session, algorithm)
        try:
            session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
        except p11.NoSuchKey:
            pass
        else:
            raise InvalidInput(f"a key labelled {label!r} already exists on the token")
        public, private = self._in_gate_generate_pair(session, label, algorithm)
        info = self._in_gate_describe(session, private)
        try:
            check_key_policy(label, info.attributes, allow_unsafe=self.allow_unsafe_keys)
        except TrustedLedgerError:
            private.destroy()
            public.destroy()
            raise
        _log.info("key_generated", label=label, algorithm=algorithm.value, fp=info.fingerprint)
        return info

    def _in_gate_require_mechanisms(self, session: Any, algorithm: KeyAlgorithm) -> None:
        offered = set(session.token.slot.get_mechanisms())
        for mechanism in (_KEYGEN_MECHANISM[algorithm], _SIGN_MECHANISM[algorithm]):
            if mechanism not in offered:
                raise MechanismUnsupported(
                    f"token {self.token_label!r} does not offer CKM_{mechanism.name} "
                    f"needed for {algorithm.value}",
                    hint="choose another --algorithm or another token",
                )

    def _in_gate_generate_pair(
        self, session: Any, label: str, algorithm: KeyAlgorithm
    ) -> tuple[Any, Any]:
        capabilities = MechanismFlag(0)
        for name in self.profile.capabilities:
            capabilities |= _CAPABILITY_FLAGS[name]
        key_type = KeyType.EC_EDWARDS if algorithm is KeyAlgorithm.ED25519 else KeyType.EC
        key_id = secrets.token_bytes(KEY_ID_BYTES)
        public_template = {
            Attribute.EC_PARAMS: encode_named_curve_parameters(algorithm.curve_name),
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
        }
        private_template = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
        }
        try:
            pair: tuple[Any, Any] = session.generate_keypair(
                key_type,
                store=True,
                label=label,
                id=key_id,
                mechanism=_KEYGEN_MECHANISM[algorithm],
                capabilities=capabilities,
                public_template=public_template,
                private_template=private_template,
            )
            return pair
        except _MECHANISM_ERRORS as exc:
            raise MechanismUnsupported(
                f"token {self.token_label!r} cannot generate {algorithm.value} keys "
                f"({type(exc).__name__})",
                hint="choose another --algorithm or another token",
            ) from None

    # --- errors -----------------------------------------------------------------------

    def _count_error(self, exc: Exception) -> None:
        CUSTODY_MODULE_ERRORS_TOTAL.labels(
            module=self._metric_module, error=type(exc).__name__
        ).inc()

    def _translated(self, exc: Exception) -> TrustedLedgerError:
        name = type(exc).__name__
        if isinstance(exc, p11.PinLocked):
            return PinRejected(
                f"the user PIN of token {self.token_label!r} is locked",
                hint="unlock it with the SO PIN (TPM: clear the dictionary lockout)",
            )
        if isinstance(exc, _PIN_ERRORS):
            return PinRejected(
                f"token {self.token_label!r} refused the PIN ({name})",
                hint="check the PIN source; repeated failures lock the token",
            )
        if isinstance(exc, _MECHANISM_ERRORS):
            return MechanismUnsupported(
                f"token {self.token_label!r} rejected the mechanism ({name})",
                hint="run `trusted-ledger hsm doctor` to see what the token offers",
            )
        return HsmModuleError(f"PKCS#11 call failed on {self.token_label!r}: {name} {exc}")
