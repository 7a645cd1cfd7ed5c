"""An intkey processor written against the Sawtooth Python SDK only (plus cbor2).

Run as ``python sdk_intkey_processor.py tcp://HOST:PORT [FAMILY]``: FAMILY (default
``intkey``) lets it serve a node that has intkey built in, which a processor may not shadow.
Everything below the first import is ordinary SDK handler code, as a Sawtooth user writes
it: the only line that is ours is the import of ``sawtooth_compat``, which lets the
published SDK load on this Python.
"""

# ruff: noqa: I001 - sawtooth_compat must be imported before anything imports sawtooth_sdk

import hashlib
import sys

import trusted_ledger.processor.sawtooth_compat  # noqa: F401 - before any sawtooth_sdk import

import cbor2
from sawtooth_sdk.processor.core import TransactionProcessor
from sawtooth_sdk.processor.exceptions import InternalError, InvalidTransaction
from sawtooth_sdk.processor.handler import TransactionHandler

VALUE_MAX = 2**32 - 1


class SdkIntkeyHandler(TransactionHandler):
    def __init__(self, family_name="intkey"):
        self._family_name = family_name
        self._namespace = hashlib.sha512(family_name.encode()).hexdigest()[:6]

    @property
    def family_name(self):
        return self._family_name

    @property
    def family_versions(self):
        return ["1.0"]

    @property
    def namespaces(self):
        return [self._namespace]

    def make_address(self, name):
        return self._namespace + hashlib.sha512(name.encode()).hexdigest()[-64:]

    def apply(self, transaction, context):
        try:
            content = cbor2.loads(transaction.payload)
        except Exception as exc:
            raise InvalidTransaction("Invalid payload serialization") from exc
        verb, name, value = content.get("Verb"), content.get("Name"), content.get("Value")
        if verb not in ("set", "inc", "dec"):
            raise InvalidTransaction('Verb must be "set", "inc", or "dec"')
        if not isinstance(value, int) or not 0 <= value <= VALUE_MAX:
            raise InvalidTransaction("Value must be an integer no less than 0")
        address = self.make_address(name)
        entries = context.get_state([address])
        try:
            state = cbor2.loads(entries[0].data) if entries else {}
        except Exception as exc:
            raise InternalError(f"Failed to load state data: {exc}") from exc
        if verb == "set":
            if name in state:
                raise InvalidTransaction(f'Verb is "set", but already exists: Name: {name}')
            state[name] = value
        else:
            if name not in state:
                raise InvalidTransaction(f'Verb is "{verb}" but name "{name}" not in state')
            state[name] = state[name] + value if verb == "inc" else state[name] - value
            if not 0 <= state[name] <= VALUE_MAX:
                raise InvalidTransaction(f'Verb is "{verb}", but result is out of range')
        context.set_state({address: cbor2.dumps(state, canonical=True)})
        context.add_event(self._family_name + "/" + verb, [("name", name)])


def main():
    processor = TransactionProcessor(url=sys.argv[1])
    processor.add_handler(SdkIntkeyHandler(*sys.argv[2:3]))
    try:
        processor.start()
    except KeyboardInterrupt:
        pass
    finally:
        processor.stop()


if __name__ == "__main__":
    main()
