"""The peer network: members' nodes over TCP, authenticated by their custody keys.

A three-message handshake (``handshake``) has each side sign the transcript with its HSM key
through the ``ChainSigner`` protocol and agree fresh X25519 keys; only current members are
admitted. All traffic then travels in ChaCha20-Poly1305 frames (``channel``) carrying typed,
size-bounded envelopes (``messages``). ``peer`` runs it on asyncio streams with bounded
queues. Sans consensus: what the payloads mean is the caller's business. docs/network.md
specifies the wire format and the security argument.
"""

from trusted_ledger.network.channel import SecureChannel, frame_bytes_max_default
from trusted_ledger.network.handshake import (
    PURPOSE_HANDSHAKE,
    Admit,
    HandshakeReason,
    HandshakeResult,
    InitiatorHandshake,
    ResponderHandshake,
)
from trusted_ledger.network.messages import MessageLimits, MessageType, PeerMessage
from trusted_ledger.network.peer import PeerConnection, PeerServer, PeerSettings, connect, serve

__all__ = [
    "PURPOSE_HANDSHAKE",
    "Admit",
    "HandshakeReason",
    "HandshakeResult",
    "InitiatorHandshake",
    "MessageLimits",
    "MessageType",
    "PeerConnection",
    "PeerMessage",
    "PeerServer",
    "PeerSettings",
    "ResponderHandshake",
    "SecureChannel",
    "connect",
    "frame_bytes_max_default",
    "serve",
]
