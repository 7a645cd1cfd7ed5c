"""``intkey`` 1.0: Sawtooth's integer-key family, wire compatible with Sawtooth's own.

Payload: a CBOR map {"Verb": "set" | "inc" | "dec", "Name": text, "Value": int}.
Address: the namespace of "intkey" followed by the last 64 hex chars of SHA-512(name).
State at an address: a CBOR map name -> int (a map, so that names whose hashes share an
address keep separate values). Rules and error cases are Sawtooth's (docs/families.md).
"""

from __future__ import annotations

from trusted_ledger.errors import InvalidTransaction
from trusted_ledger.processing.codec import decode, decode_map, encode_canonical
from trusted_ledger.processing.context import HandlerContext
from trusted_ledger.processing.handler import TransactionHandler
from trusted_ledger.state import hashed_address, namespace_prefix
from trusted_ledger.txn import Transaction

FAMILY_NAME = "intkey"
FAMILY_VERSION = "1.0"
INTKEY_NAMESPACE = namespace_prefix(FAMILY_NAME)
name_chars_max = 20
value_min = 0
value_max = 2**32 - 1
VERBS = ("set", "inc", "dec")


def intkey_address(name: str) -> str:
    return hashed_address(FAMILY_NAME, name.encode("utf-8"))


def intkey_payload(verb: str, name: str, value: int) -> bytes:
    """A payload as a client would send it (canonical CBOR; any CBOR map is accepted)."""
    return encode_canonical({"Verb": verb, "Name": name, "Value": value})


def decode_intkey_state(data: bytes) -> dict[str, int]:
    """The name -> value map stored at one address.

    Sawtooth raises InternalError for undecodable state; here it is a deterministic
    rejection, because state is the same on every node and a retry cannot fix it.
    """
    state = decode_map(data, "intkey state")
    for name, value in state.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidTransaction(f"intkey state holds a non-integer for {name!r}")
    return state


class IntkeyHandler(TransactionHandler):
    """Sets, increments and decrements named unsigned 32-bit integers."""

    @property
    def family_name(self) -> str:
        return FAMILY_NAME

    @property
    def family_versions(self) -> tuple[str, ...]:
        return (FAMILY_VERSION,)

    def apply(self, transaction: Transaction, context: HandlerContext) -> None:
        verb, name, value = _unpack(transaction.payload)
        address = intkey_address(name)
        stored = context.get_state([address]).get(address)
        state = decode_intkey_state(stored) if stored is not None else {}
        if verb == "set":
            if name in state:
                raise InvalidTransaction(
                    f'Verb is "set", but already exists: Name: {name}, Value {state[name]}'
                )
            updated = value
        else:
            if name not in state:
                raise InvalidTransaction(f'Verb is "{verb}" but name "{name}" not in state')
            updated = state[name] + value if verb == "inc" else state[name] - value
            if updated > value_max:
                raise InvalidTransaction(
                    f'Verb is "inc", but result would be greater than {value_max}'
                )
            if updated < value_min:
                raise InvalidTransaction(
                    f'Verb is "dec", but result would be less than {value_min}'
                )
        state[name] = updated
        context.set_state({address: encode_canonical(state)})


def _unpack(payload: bytes) -> tuple[str, str, int]:
    try:
        content = decode(payload, "intkey payload")
    except InvalidTransaction as exc:
        raise InvalidTransaction("Invalid payload serialization", hint=exc.message) from exc
    if not isinstance(content, dict):
        raise InvalidTransaction("Invalid payload serialization", hint="payload is not a map")
    for field in ("Verb", "Name", "Value"):
        if field not in content:
            raise InvalidTransaction(f"{field} is required")
    verb, name, value = content["Verb"], content["Name"], content["Value"]
    if verb not in VERBS:
        raise InvalidTransaction('Verb must be "set", "inc", or "dec"')
    if not isinstance(name, str) or len(name) > name_chars_max:
        raise InvalidTransaction(
            f"Name must be a string of no more than {name_chars_max} characters"
        )
    # bool is an int in Python; CBOR true is not an integer, and other SDKs reject it.
    if not isinstance(value, int) or isinstance(value, bool) or not value_min <= value <= value_max:
        raise InvalidTransaction(
            f"Value must be an integer no less than {value_min} and no greater than {value_max}"
        )
    return verb, name, value
