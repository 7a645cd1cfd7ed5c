"""Bounds on everything a client can send, with units in the names.

Checked before parsing wherever the bytes allow it (sizes and counts come from a scan of the
wire format, not from decoding), because decoding a huge message is itself the attack. The
defaults suit a consortium ledger of payment-sized transactions; an operator may tighten or
loosen them through configuration, and every node of one network must use the same values or
they would disagree on which batches are valid.
"""

from __future__ import annotations

from dataclasses import dataclass

from trusted_ledger.errors import InvalidInput

_KiB = 1024
_MiB = 1024 * _KiB
# Encoded sizes inside a BatchHeader: tag, length and 66 hex chars for the key; tag, two length
# bytes and 128 hex chars for each transaction id.
_BATCH_HEADER_KEY_BYTES = 68
_BATCH_HEADER_ID_BYTES = 131


@dataclass(frozen=True, slots=True)
class TxnLimits:
    """Size and count bounds for batch lists, batches and transactions."""

    # One POST /batches body. Also bounds the work of one request before anything is parsed.
    batch_list_bytes_max: int = 10 * _MiB
    batches_per_list_max: int = 256
    # One batch commits atomically; a huge one would hold a block hostage.
    transactions_per_batch_max: int = 1000
    # Bounds the signature checks one request can demand (about 40 us each).
    transactions_per_list_max: int = 10_000
    payload_bytes_max: int = 1 * _MiB
    # Generous for the address and dependency counts below (about 45 KiB at their maximum).
    transaction_header_bytes_max: int = 64 * _KiB
    # Must hold transactions_per_batch_max ids of 131 encoded bytes each, plus the key.
    batch_header_bytes_max: int = 256 * _KiB
    # Each of inputs and outputs.
    addresses_per_transaction_max: int = 256
    dependencies_per_transaction_max: int = 64
    nonce_chars_max: int = 128
    family_name_chars_max: int = 64
    family_version_chars_max: int = 16

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInput(f"TxnLimits.{name} must be a positive int, got {value!r}")
        # A batch at the transaction bound must still have a header within its own bound.
        needed = _BATCH_HEADER_KEY_BYTES + self.transactions_per_batch_max * _BATCH_HEADER_ID_BYTES
        if self.batch_header_bytes_max < needed:
            raise InvalidInput(
                f"TxnLimits.batch_header_bytes_max must be at least {needed} to list "
                f"{self.transactions_per_batch_max} transaction ids"
            )


DEFAULT_LIMITS = TxnLimits()
