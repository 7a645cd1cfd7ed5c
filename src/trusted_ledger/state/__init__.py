"""State: Sawtooth-style addresses, the Merkle-radix tree, read views, transaction contexts.

Imports ``storage`` and ``hashing`` only. Node encoding and hashing: docs/formats.md §5.
"""

from trusted_ledger.state.addresses import (
    ADDRESS_BYTES,
    ADDRESS_HEX_CHARS,
    NAMESPACE_HEX_CHARS,
    address_from_bytes,
    address_to_bytes,
    hashed_address,
    make_address,
    namespace_prefix,
    validate_address,
    validate_prefix,
)
from trusted_ledger.state.context import (
    TransactionContext,
    check_input,
    check_output,
    declared_prefixes_max,
)
from trusted_ledger.state.encoding import (
    EMPTY_ROOT,
    NODE_HASH_DOMAIN,
    decode_node,
    encode_branch,
    encode_leaf,
    node_hash,
    value_bytes_max,
)
from trusted_ledger.state.tree import (
    STATE_NODES_COLUMN_FAMILY,
    Changes,
    StateStore,
    StateUpdate,
    StateView,
)

__all__ = [
    "ADDRESS_BYTES",
    "ADDRESS_HEX_CHARS",
    "EMPTY_ROOT",
    "NAMESPACE_HEX_CHARS",
    "NODE_HASH_DOMAIN",
    "STATE_NODES_COLUMN_FAMILY",
    "Changes",
    "StateStore",
    "StateUpdate",
    "StateView",
    "TransactionContext",
    "address_from_bytes",
    "address_to_bytes",
    "check_input",
    "check_output",
    "declared_prefixes_max",
    "decode_node",
    "encode_branch",
    "encode_leaf",
    "hashed_address",
    "make_address",
    "namespace_prefix",
    "node_hash",
    "validate_address",
    "validate_prefix",
    "value_bytes_max",
]
