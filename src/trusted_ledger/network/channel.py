"""The encrypted, authenticated frame layer: ChaCha20-Poly1305 with one counter per direction.

A frame on the wire is ``u32 length || ciphertext``, where the ciphertext (tag included)
seals one application envelope under the sender's direction key with the 96-bit nonce
``0x00000000 || u64 counter`` (RFC 8439 layout) and the 4 length bytes as associated data.
Both sides count frames: the receiver opens frame n only with nonce n, so a replayed,
dropped, reordered or spliced frame fails authentication exactly as a tampered one does, and
the first such failure breaks the channel for good (after a failed open the peer's stream
position is unknown, and an attacker must not get a second try). Sans-I/O like the
handshake; ``peer`` moves the bytes.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from trusted_ledger.errors import ChannelBroken, InternalError, InvalidInput, PeerProtocolError

FRAME_HEADER_BYTES = 4
TAG_BYTES = 16
frame_bytes_max_default = 16 * 1024 * 1024
"""Default bound of one frame's plaintext (one envelope: type byte and payload)."""
_COUNTER_MAX = 2**64 - 1  # never reached in practice; a channel refuses rather than wrap
_U32 = struct.Struct(">I")
_NONCE_PREFIX = bytes(4)

REASON_AUTH_FAILED = "auth_failed"
REASON_OVERSIZED_FRAME = "oversized_frame"
REASON_SHORT_FRAME = "short_frame"
REASON_NONCE_EXHAUSTED = "nonce_exhausted"


def _nonce(counter: int) -> bytes:
    return _NONCE_PREFIX + counter.to_bytes(8, "big")


class SecureChannel:
    """Seals outgoing and opens incoming frames of one connection, in order."""

    def __init__(self, send_key: bytes, receive_key: bytes, *, frame_bytes_max: int) -> None:
        if len(send_key) != 32 or len(receive_key) != 32:
            raise InvalidInput("channel keys are 32 bytes")
        if send_key == receive_key:
            # The two directions must never share a key: a frame could be reflected back.
            raise InternalError("send and receive keys are equal")
        if not 1 <= frame_bytes_max <= 2**32 - 1 - TAG_BYTES:
            raise InvalidInput(f"frame_bytes_max {frame_bytes_max} outside 1..2**32-17")
        self._send = ChaCha20Poly1305(send_key)
        self._receive = ChaCha20Poly1305(receive_key)
        self._send_counter = 0
        self._receive_counter = 0
        self._broken = False
        self.frame_bytes_max = frame_bytes_max

    @property
    def sent(self) -> int:
        """Frames sealed so far (= the next send nonce)."""
        return self._send_counter

    @property
    def received(self) -> int:
        """Frames opened so far (= the next receive nonce)."""
        return self._receive_counter

    def seal(self, plaintext: bytes) -> bytes:
        """The whole frame (header and ciphertext) for ``plaintext``; advances the counter."""
        if not 1 <= len(plaintext) <= self.frame_bytes_max:
            raise InvalidInput(
                f"frame plaintext of {len(plaintext)} bytes (1..{self.frame_bytes_max})"
            )
        if self._send_counter >= _COUNTER_MAX:
            raise ChannelBroken("send counter exhausted", reason=REASON_NONCE_EXHAUSTED)
        header = _U32.pack(len(plaintext) + TAG_BYTES)
        ciphertext = self._send.encrypt(_nonce(self._send_counter), plaintext, header)
        self._send_counter += 1
        return header + ciphertext

    def check_header(self, header: bytes) -> int:
        """The ciphertext length a frame header announces, checked before any allocation."""
        if self._broken:
            raise ChannelBroken("channel already failed", reason=REASON_AUTH_FAILED)
        (length,) = _U32.unpack(header)
        if length > self.frame_bytes_max + TAG_BYTES:
            self._broken = True
            raise PeerProtocolError(
                f"frame of {length} bytes exceeds {self.frame_bytes_max + TAG_BYTES}",
                reason=REASON_OVERSIZED_FRAME,
            )
        if length <= TAG_BYTES:
            self._broken = True
            raise PeerProtocolError(
                f"frame of {length} bytes holds no plaintext", reason=REASON_SHORT_FRAME
            )
        return int(length)

    def open(self, header: bytes, ciphertext: bytes) -> bytes:
        """The plaintext of the next frame; ``ChannelBroken`` (for good) if it is not
        exactly the frame the peer sealed with the next counter."""
        length = self.check_header(header)
        if len(ciphertext) != length:
            self._broken = True
            raise PeerProtocolError(
                "frame body does not match its header", reason=REASON_SHORT_FRAME
            )
        if self._receive_counter >= _COUNTER_MAX:
            self._broken = True
            raise ChannelBroken("receive counter exhausted", reason=REASON_NONCE_EXHAUSTED)
        try:
            plaintext = self._receive.decrypt(_nonce(self._receive_counter), ciphertext, header)
        except InvalidTag as exc:
            self._broken = True
            raise ChannelBroken(
                f"frame {self._receive_counter} failed authentication (tampered, replayed, "
                "reordered or forged)",
                reason=REASON_AUTH_FAILED,
            ) from exc
        self._receive_counter += 1
        return plaintext
