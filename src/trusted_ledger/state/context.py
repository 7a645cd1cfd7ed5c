"""Per-transaction state contexts: declared inputs and outputs, recorded reads and writes.

Sawtooth semantics: a transaction declares address prefixes it may read (inputs) and write
(outputs); a declared prefix authorises every address under it. Reading outside the inputs,
or setting or deleting outside the outputs, raises ``UndeclaredInput`` / ``UndeclaredOutput``
and the transaction is invalid on every node alike.

A context never writes to the tree. It records what the transaction read (the value it saw,
or None) and what it wrote (value, or None for a delete); a scheduler checks the reads for
conflicts and merges the writes of valid transactions in order, then hands the merged
changes to ``StateStore.update`` once per block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from trusted_ledger.errors import InvalidInput, UndeclaredInput, UndeclaredOutput
from trusted_ledger.state.addresses import validate_address, validate_prefix
from trusted_ledger.state.encoding import value_bytes_max
from trusted_ledger.state.tree import StateView

declared_prefixes_max = 1024
"""Inputs (or outputs) one transaction may declare; bounds the per-access authorisation check."""


def _declared(prefixes: Iterable[str], kind: str) -> tuple[str, ...]:
    if isinstance(prefixes, str):
        raise InvalidInput(f"declared {kind} must be a list of address prefixes, not one string")
    checked = tuple(sorted({validate_prefix(prefix) for prefix in prefixes}))
    if len(checked) > declared_prefixes_max:
        raise InvalidInput(
            f"{len(checked)} declared {kind} exceed declared_prefixes_max={declared_prefixes_max}"
        )
    return checked


def _covered(address: str, prefixes: tuple[str, ...]) -> bool:
    return any(address.startswith(prefix) for prefix in prefixes)


def check_input(address: str, inputs: tuple[str, ...]) -> None:
    """Refuse a read outside the declared ``inputs``: the one rule, for every context that
    serves a transaction's reads (in process, or for an external processor)."""
    validate_address(address)
    if not _covered(address, inputs):
        raise UndeclaredInput(
            f"read of {address} is outside the transaction's declared inputs",
            hint="declare this address, or a prefix of it, among the transaction's inputs",
        )


def check_output(address: str, outputs: tuple[str, ...]) -> None:
    """Refuse a write or delete outside the declared ``outputs``."""
    validate_address(address)
    if not _covered(address, outputs):
        raise UndeclaredOutput(
            f"write of {address} is outside the transaction's declared outputs",
            hint="declare this address, or a prefix of it, among the transaction's outputs",
        )


class TransactionContext:
    """What one transaction may see and change, on top of a base state.

    ``prior`` holds the merged writes of transactions scheduled before this one in the same
    block (address -> value, None = deleted); reads see them before the base view.
    """

    def __init__(
        self,
        base: StateView,
        inputs: Iterable[str],
        outputs: Iterable[str],
        prior: Mapping[str, bytes | None] | None = None,
    ) -> None:
        self.base = base
        self.inputs = _declared(inputs, "inputs")
        self.outputs = _declared(outputs, "outputs")
        self._prior: Mapping[str, bytes | None] = prior if prior is not None else {}
        self._reads: dict[str, bytes | None] = {}
        self._writes: dict[str, bytes | None] = {}

    @property
    def reads(self) -> Mapping[str, bytes | None]:
        """Addresses read from outside this context, with the value seen (None: absent)."""
        return self._reads

    @property
    def writes(self) -> Mapping[str, bytes | None]:
        """Addresses this transaction set (to a value) or deleted (None), last write wins."""
        return self._writes

    def get(self, address: str) -> bytes | None:
        check_input(address, self.inputs)
        if address in self._writes:
            return self._writes[address]  # a transaction reads its own writes
        if address in self._reads:
            return self._reads[address]
        value = self._prior[address] if address in self._prior else self.base.get(address)
        self._reads[address] = value
        return value

    def get_many(self, addresses: Iterable[str]) -> dict[str, bytes]:
        """Values of those ``addresses`` that hold one (Sawtooth's get_state)."""
        found = {}
        for address in addresses:
            value = self.get(address)
            if value is not None:
                found[address] = value
        return found

    def set(self, address: str, value: bytes) -> None:
        check_output(address, self.outputs)
        if not isinstance(value, bytes):
            raise InvalidInput(f"state values are bytes, not {type(value).__name__}")
        if len(value) > value_bytes_max:
            raise InvalidInput(
                f"value of {len(value)} bytes exceeds value_bytes_max={value_bytes_max}"
            )
        self._writes[address] = value

    def delete(self, address: str) -> None:
        check_output(address, self.outputs)
        self._writes[address] = None
