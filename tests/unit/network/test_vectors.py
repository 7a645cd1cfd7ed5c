"""The handshake and frame formats against known answers laid out independently of the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from tests.unit.network.support import KeySigner, Members, key_from_label
from trusted_ledger.custody import KeyAlgorithm, PublicKey
from trusted_ledger.network import InitiatorHandshake, ResponderHandshake, SecureChannel

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "network"
CASES: list[dict[str, Any]] = json.loads((VECTORS / "network_vectors.json").read_text())["cases"]


def _run(case: dict[str, Any]) -> tuple[list[bytes], Any, Any, KeySigner, KeySigner]:
    algorithm = KeyAlgorithm(case["key_algorithm"])
    initiator = KeySigner(
        key_from_label(algorithm, f"trusted-ledger network vector initiator {algorithm.value}"),
        deterministic=True,
    )
    responder = KeySigner(
        key_from_label(algorithm, f"trusted-ledger network vector responder {algorithm.value}"),
        deterministic=True,
    )
    members = Members(initiator.public_key, responder.public_key)

    def ephemeral(name: str) -> x25519.X25519PrivateKey:
        return x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(case[name]))

    i = InitiatorHandshake(
        case["chain_id"], initiator, members,
        ephemeral=ephemeral("initiator_ephemeral_private"),
        nonce=bytes.fromhex(case["initiator_nonce"]),
    )  # fmt: skip
    r = ResponderHandshake(
        case["chain_id"], responder, members,
        ephemeral=ephemeral("responder_ephemeral_private"),
        nonce=bytes.fromhex(case["responder_nonce"]),
    )  # fmt: skip
    msg1 = i.hello()
    r.read_hello(msg1)
    msg2 = r.response()
    i.read_response(msg2)
    msg3 = i.finish()
    r.read_finish(msg3)
    return [msg1, msg2, msg3], i.result, r.result, initiator, responder


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_handshake_reproduces_the_vector_bytes_and_keys(case: dict[str, Any]) -> None:
    messages, i, r, initiator, responder = _run(case)
    assert [m.hex() for m in messages] == [case["msg1"], case["msg2"], case["msg3"]]
    assert i.transcript_hash.hex() == r.transcript_hash.hex() == case["transcript_hash"]
    assert i.send_key.hex() == r.receive_key.hex() == case["session_key_i2r"]
    assert r.send_key.hex() == i.receive_key.hex() == case["session_key_r2i"]
    assert i.peer == PublicKey.from_spki(bytes.fromhex(case["responder_spki_der"]))
    assert r.peer == PublicKey.from_spki(bytes.fromhex(case["initiator_spki_der"]))
    # Exactly one custody signature per side, over the documented digest, unguarded.
    assert responder.signed == [("handshake", None, bytes.fromhex(case["responder_signed_digest"]))]
    assert initiator.signed == [("handshake", None, bytes.fromhex(case["initiator_signed_digest"]))]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_frames_match_the_vector(case: dict[str, Any]) -> None:
    _, i, r, _, _ = _run(case)
    bound = 1 << 20
    sender = {"i2r": SecureChannel(i.send_key, i.receive_key, frame_bytes_max=bound),
              "r2i": SecureChannel(r.send_key, r.receive_key, frame_bytes_max=bound)}  # fmt: skip
    receiver = {"i2r": SecureChannel(r.send_key, r.receive_key, frame_bytes_max=bound),
                "r2i": SecureChannel(i.send_key, i.receive_key, frame_bytes_max=bound)}  # fmt: skip
    for vector in case["frames"]:
        direction, frame = vector["direction"], bytes.fromhex(vector["frame"])
        assert sender[direction].sent == vector["counter"]
        assert sender[direction].seal(bytes.fromhex(vector["envelope"])).hex() == vector["frame"]
        assert receiver[direction].open(frame[:4], frame[4:]).hex() == vector["envelope"]


def test_generator_reproduces_the_vectors() -> None:
    result = subprocess.run(
        [sys.executable, str(VECTORS / "generate_network_vectors.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
