"""The signing guard's rule, its state file format and its durability, without a token."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trusted_ledger.custody.guard import (
    STATE_BYTES,
    Decision,
    Position,
    SigningGuard,
    Watermark,
    decide,
    decode_state,
    encode_state,
)
from trusted_ledger.errors import (
    GuardStateCorrupted,
    GuardStateMissing,
    InvalidInput,
    SigningRefused,
)
from trusted_ledger.observability.metrics import REGISTRY

FP = hashlib.sha256(b"test key").digest()
positions = st.builds(
    Position,
    st.integers(0, 5),
    st.integers(0, 3),
    st.integers(0, 2),
)
digests = st.sampled_from([bytes([i]) * 32 for i in range(3)])


def test_decide_basic_cases() -> None:
    w = Watermark(Position(5, 1, 2), b"a" * 32)
    assert decide(None, Position(0, 0, 0), b"x" * 32) is Decision.ADVANCE
    assert decide(w, Position(5, 1, 3), b"x" * 32) is Decision.ADVANCE
    assert decide(w, Position(6, 0, 0), b"x" * 32) is Decision.ADVANCE
    assert decide(w, Position(5, 1, 2), b"a" * 32) is Decision.REPEAT
    assert decide(w, Position(5, 1, 2), b"b" * 32) is Decision.REFUSE_CONFLICT
    assert decide(w, Position(5, 0, 9), b"a" * 32) is Decision.REFUSE_BELOW
    assert decide(w, Position(4, 9, 9), b"a" * 32) is Decision.REFUSE_BELOW


@given(st.lists(st.tuples(positions, digests), max_size=40))
def test_guard_never_signs_two_digests_at_one_position(tmp_path_factory, requests) -> None:
    path = tmp_path_factory.mktemp("g") / "guard.state"
    guard = SigningGuard.create(path, FP.hex())
    signed: dict[Position, bytes] = {}
    highest: Position | None = None
    for position, digest in requests:
        try:
            guard.authorise(position, digest)
        except SigningRefused:
            # A refusal must be justified: below the highest signed, or a conflict there.
            assert highest is not None
            assert position < highest or signed[position] != digest
            continue
        assert signed.setdefault(position, digest) == digest
        assert highest is None or position >= highest
        highest = position
        # What is on disk is what was authorised last, before any signature.
        reopened = SigningGuard.open(path, FP.hex())
        assert reopened.watermark == Watermark(position, signed[position])


@given(positions, digests)
def test_state_round_trip(position: Position, digest: bytes) -> None:
    data = encode_state(FP, Watermark(position, digest))
    assert len(data) == STATE_BYTES == 118
    assert decode_state(data, FP, source="t") == Watermark(position, digest)


@given(st.integers(0, STATE_BYTES - 1), st.integers(1, 255))
def test_any_flipped_byte_is_detected(offset: int, flip: int) -> None:
    data = bytearray(encode_state(FP, Watermark(Position(7, 2, 1), b"d" * 32)))
    data[offset] ^= flip
    with pytest.raises(GuardStateCorrupted):
        decode_state(bytes(data), FP, source="t")


def test_known_answer_encoding() -> None:
    data = encode_state(bytes(32), Watermark(Position(1, 2, 3), bytes(range(32))))
    body = (
        b"TLGUARD\x01" + bytes(32) + b"\x01" + (1).to_bytes(8, "big") + (2).to_bytes(4, "big")
        + b"\x03" + bytes(range(32))
    )  # fmt: skip
    assert data == body + hashlib.sha256(body).digest()


def test_truncated_file_is_refused_not_reset(tmp_path: Path) -> None:
    path = tmp_path / "guard.state"
    guard = SigningGuard.create(path, FP.hex())
    guard.authorise(Position(3, 0, 1), b"v" * 32)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(GuardStateCorrupted, match="50 bytes"):
        SigningGuard.open(path, FP.hex())
    assert path.stat().st_size == 50  # left for the operator to investigate


def test_missing_state_is_not_recreated(tmp_path: Path) -> None:
    with pytest.raises(GuardStateMissing):
        SigningGuard.open(tmp_path / "absent.state", FP.hex())
    assert not (tmp_path / "absent.state").exists()


def test_state_of_another_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "guard.state"
    SigningGuard.create(path, FP.hex())
    with pytest.raises(GuardStateCorrupted, match="belongs to key"):
        SigningGuard.open(path, hashlib.sha256(b"other").hexdigest())


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "guard.state"
    SigningGuard.create(path, FP.hex())
    with pytest.raises(InvalidInput):
        SigningGuard.create(path, FP.hex())


def test_refusal_message_names_watermark(tmp_path: Path) -> None:
    guard = SigningGuard.create(tmp_path / "g.state", FP.hex())
    guard.authorise(Position(10, 0, 2), b"a" * 32)
    with pytest.raises(SigningRefused, match=r"conflicting digest; watermark is \(10, 0, 2\)"):
        guard.authorise(Position(10, 0, 2), b"b" * 32)
    assert guard.authorise(Position(10, 0, 2), b"a" * 32) is Decision.REPEAT


@pytest.mark.parametrize(
    ("height", "round_", "step"), [(-1, 0, 0), (2**64, 0, 0), (0, 2**32, 0), (0, 0, 256)]
)
def test_position_bounds(height: int, round_: int, step: int) -> None:
    with pytest.raises(InvalidInput):
        Position(height, round_, step)


def test_refusals_are_counted_by_reason(tmp_path: Path) -> None:
    def refusals(reason: str) -> float:
        value = REGISTRY.get_sample_value("tl_custody_guard_refusals_total", {"reason": reason})
        return value or 0.0

    guard = SigningGuard.create(tmp_path / "g.state", FP.hex())
    guard.authorise(Position(4, 0, 1), b"a" * 32)
    below, conflict = refusals("below_watermark"), refusals("conflicting_digest")
    for position, digest in ((Position(3, 9, 9), b"a" * 32), (Position(4, 0, 1), b"b" * 32)):
        with pytest.raises(SigningRefused):
            guard.authorise(position, digest)
    assert refusals("below_watermark") == below + 1
    assert refusals("conflicting_digest") == conflict + 1


def test_raise_to_raises_durably_and_never_lowers(tmp_path: Path) -> None:
    path = tmp_path / "g.state"
    guard = SigningGuard.create(path, FP.hex())
    digest = bytes([7]) * 32
    assert guard.raise_to(Watermark(Position(5, 0, 1), digest))
    assert SigningGuard.open(path, FP.hex()).watermark == Watermark(Position(5, 0, 1), digest)
    # Never lower, and equal is no change.
    assert not guard.raise_to(Watermark(Position(4, 9, 3), digest))
    assert not guard.raise_to(Watermark(Position(5, 0, 1), bytes(32)))
    assert guard.watermark == Watermark(Position(5, 0, 1), digest)
    # The raised watermark acts as any other: below refused, same digest repeats.
    with pytest.raises(SigningRefused, match="below watermark"):
        guard.authorise(Position(5, 0, 0), digest)
    with pytest.raises(SigningRefused, match="conflicting digest"):
        guard.authorise(Position(5, 0, 1), bytes([8]) * 32)
    assert guard.authorise(Position(5, 0, 1), digest) is Decision.REPEAT
    assert guard.authorise(Position(6, 0, 0), digest) is Decision.ADVANCE
    with pytest.raises(InvalidInput, match="32 bytes"):
        guard.raise_to(Watermark(Position(9, 0, 0), b"short"))
