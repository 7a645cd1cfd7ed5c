"""Catch-up wire format (BLOCK_REQUEST / BLOCK_RESPONSE payloads) and the consensus state file.

Both payloads are fixed layouts with every length checked before use and no trailing byte
allowed (docs/consortium.md, "Catch-up messages"). A response carries ONE height: a block of
the chain's largest size then fits one frame, and a responder never builds a message larger
than one block. What a response claims is not trusted: the receiver verifies the certificate
against the membership before anything is committed.

The consensus state file is where a member keeps the BFT machine's ``PersistentState``
between runs: written to a temporary file, fsynced, renamed over the old one and the
directory fsynced, so a crash at any instant leaves either the old or the new state whole.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from trusted_ledger.chain.block import SIGNATURE_BYTES
from trusted_ledger.chain.block import block_bytes_max as format_block_bytes_max
from trusted_ledger.chain.certificate import FINGERPRINT_BYTES, members_max
from trusted_ledger.consensus import PersistentState
from trusted_ledger.consensus.types import Step
from trusted_ledger.errors import ConfigurationError, MalformedCatchUpMessage

REQUEST_MAGIC = b"TLBQ"
RESPONSE_MAGIC = b"TLBS"
WIRE_VERSION = 1
_REQUEST = struct.Struct(">4sHQH")
_RESPONSE_HEAD = struct.Struct(">4sHQQI")
_U32 = struct.Struct(">I")

certificate_bytes_max = 256 + members_max * (FINGERPRINT_BYTES + SIGNATURE_BYTES)
"""Longest certificate encoding: header fields (chain id ≤ 64) and one vote per member."""


def response_bytes_max(block_bytes_max: int = format_block_bytes_max) -> int:
    """Longest BLOCK_RESPONSE payload for blocks of at most ``block_bytes_max`` bytes."""
    return _RESPONSE_HEAD.size + block_bytes_max + _U32.size + certificate_bytes_max


@dataclass(frozen=True)
class BlockResponse:
    """One committed height from a peer, or (empty block) "I have nothing from ``height``"."""

    head: int
    """The responder's committed head when it answered."""
    height: int
    block: bytes
    """The block's encoding; empty: the responder holds no block at ``height``."""
    certificate: bytes
    """The commit certificate's encoding; empty exactly when ``block`` is."""


def encode_block_request(first: int, count: int) -> bytes:
    """Ask for heights ``first .. first + count - 1``."""
    if first < 1 or not 1 <= count <= 0xFFFF:
        raise MalformedCatchUpMessage(f"bad block request: first {first}, count {count}")
    return _REQUEST.pack(REQUEST_MAGIC, WIRE_VERSION, first, count)


def decode_block_request(data: bytes, count_max: int) -> tuple[int, int]:
    """(first, count) of a BLOCK_REQUEST; count in [1, ``count_max``], first ≥ 1."""
    if len(data) != _REQUEST.size:
        raise MalformedCatchUpMessage(f"block request of {len(data)} bytes, not {_REQUEST.size}")
    magic, version, first, count = _REQUEST.unpack(data)
    if magic != REQUEST_MAGIC or version != WIRE_VERSION:
        raise MalformedCatchUpMessage("block request: wrong magic or version")
    if first < 1 or not 1 <= count <= count_max:
        raise MalformedCatchUpMessage(
            f"block request: first {first} (≥ 1), count {count} (1..{count_max})"
        )
    return first, count


def encode_block_response(
    response: BlockResponse, block_bytes_max: int = format_block_bytes_max
) -> bytes:
    _check_response(response, block_bytes_max)
    return b"".join(
        (
            _RESPONSE_HEAD.pack(
                RESPONSE_MAGIC, WIRE_VERSION, response.head, response.height, len(response.block)
            ),
            response.block,
            _U32.pack(len(response.certificate)),
            response.certificate,
        )
    )


def decode_block_response(
    data: bytes, block_bytes_max: int = format_block_bytes_max
) -> BlockResponse:
    """Parse a BLOCK_RESPONSE; lengths are checked against their bounds before slicing."""
    if len(data) < _RESPONSE_HEAD.size + _U32.size:
        raise MalformedCatchUpMessage(f"block response of {len(data)} bytes is too short")
    magic, version, head, height, block_length = _RESPONSE_HEAD.unpack_from(data)
    if magic != RESPONSE_MAGIC or version != WIRE_VERSION:
        raise MalformedCatchUpMessage("block response: wrong magic or version")
    if block_length > block_bytes_max:
        raise MalformedCatchUpMessage(f"block response: block of {block_length} bytes")
    offset = _RESPONSE_HEAD.size
    if len(data) < offset + block_length + _U32.size:
        raise MalformedCatchUpMessage("block response: short block")
    block = data[offset : offset + block_length]
    offset += block_length
    (certificate_length,) = _U32.unpack_from(data, offset)
    offset += _U32.size
    if certificate_length > certificate_bytes_max or len(data) != offset + certificate_length:
        raise MalformedCatchUpMessage(
            f"block response: certificate of {certificate_length} bytes in "
            f"{len(data) - offset} remaining"
        )
    response = BlockResponse(head, height, block, data[offset:])
    _check_response(response, block_bytes_max)
    return response


def _check_response(response: BlockResponse, block_bytes_max: int) -> None:
    if response.height < 1 or len(response.block) > block_bytes_max:
        raise MalformedCatchUpMessage(f"block response: height {response.height}")
    if bool(response.block) != bool(response.certificate):
        raise MalformedCatchUpMessage("block response: a block comes with its certificate")
    if len(response.certificate) > certificate_bytes_max:
        raise MalformedCatchUpMessage("block response: certificate too long")
    if response.block and response.height > response.head:
        raise MalformedCatchUpMessage(
            f"block response: block {response.height} above the responder's head {response.head}"
        )


# --- the consensus state file --------------------------------------------------------------


class ConsensusStateFile:
    """The BFT machine's ``PersistentState`` in one JSON file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> PersistentState | None:
        """The state last written, or None if there is none. A file that does not parse is
        a ``ConfigurationError``: starting without the lock it held could break safety."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return PersistentState(
                height=_int(raw["height"]),
                round=_int(raw["round"]),
                step=Step(_int(raw["step"])),
                locked_round=_int(raw["locked_round"]),
                locked_value=_value(raw["locked_value"]),
                valid_round=_int(raw["valid_round"]),
                valid_value=_value(raw["valid_value"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"consensus state file {self.path} is unreadable: {exc!r}",
                hint="restore it from a backup; removing it may let this member vote "
                "against a lock it held (the signing guard still prevents double signing)",
            ) from exc

    def save(self, state: PersistentState) -> None:
        """Write ``state`` durably (temporary file, fsync, rename, directory fsync)."""
        text = json.dumps(
            {
                "height": state.height,
                "round": state.round,
                "step": int(state.step),
                "locked_round": state.locked_round,
                "locked_value": None if state.locked_value is None else state.locked_value.hex(),
                "valid_round": state.valid_round,
                "valid_value": None if state.valid_value is None else state.valid_value.hex(),
            },
            sort_keys=True,
        )
        _write_durably(self.path, text.encode("utf-8"))


class OwnProposalFile:
    """The last block this member signed as proposer: the block's own bytes (docs/formats.md
    block format, self-verifying: its proposer signature is checked when it is read back),
    replaced atomically and fsynced before the proposal is sent (node/bft_proposer.py
    ``ProposalFile``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def save(self, block: bytes) -> None:
        _write_durably(self.path, block)


def _write_durably(path: Path, data: bytes) -> None:
    """Temporary file, fsync, rename, directory fsync: the old or the new bytes, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _value(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected hex or null, got {value!r}")
    raw = bytes.fromhex(value)
    if len(raw) != 32:
        raise ValueError(f"a block id has 32 bytes, got {len(raw)}")
    return raw
