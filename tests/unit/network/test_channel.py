"""Frames: sealing and opening in order; any tampering, replay or reordering breaks the channel."""

from __future__ import annotations

import asyncio
import itertools
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trusted_ledger.errors import ChannelBroken, InvalidInput, PeerProtocolError
from trusted_ledger.network import SecureChannel
from trusted_ledger.network.channel import TAG_BYTES

KEY_A, KEY_B = os.urandom(32), os.urandom(32)


def _pair(frame_bytes_max: int = 1 << 20) -> tuple[SecureChannel, SecureChannel]:
    return (
        SecureChannel(KEY_A, KEY_B, frame_bytes_max=frame_bytes_max),
        SecureChannel(KEY_B, KEY_A, frame_bytes_max=frame_bytes_max),
    )


def _open(channel: SecureChannel, frame: bytes) -> bytes:
    return channel.open(frame[:4], frame[4:])


def test_frames_round_trip_in_order_both_ways() -> None:
    a, b = _pair()
    for i in range(5):
        assert _open(b, a.seal(b"to b %d" % i)) == b"to b %d" % i
        assert _open(a, b.seal(b"to a %d" % i)) == b"to a %d" % i
    assert a.sent == a.received == b.sent == b.received == 5


def test_frame_header_is_the_ciphertext_length_and_is_authenticated() -> None:
    a, b = _pair()
    frame = a.seal(b"x" * 10)
    assert int.from_bytes(frame[:4], "big") == 10 + TAG_BYTES == len(frame) - 4
    # A header that still announces a plausible length but differs breaks authentication.
    with pytest.raises(PeerProtocolError):
        b.open((11 + TAG_BYTES).to_bytes(4, "big"), frame[4:])


@pytest.mark.parametrize("index", [4, 10, -1])
def test_a_flipped_ciphertext_bit_breaks_the_channel_for_good(index: int) -> None:
    a, b = _pair()
    frame = bytearray(a.seal(b"payload bytes"))
    frame[index] ^= 0x04
    with pytest.raises(ChannelBroken) as broken:
        _open(b, bytes(frame))
    assert broken.value.reason == "auth_failed"
    with pytest.raises(ChannelBroken):  # even the genuine next frame is refused now
        _open(b, a.seal(b"next"))


def test_a_replayed_frame_fails() -> None:
    a, b = _pair()
    frame = a.seal(b"once")
    assert _open(b, frame) == b"once"
    with pytest.raises(ChannelBroken):
        _open(b, frame)


def test_reordered_and_dropped_frames_fail() -> None:
    a, b = _pair()
    first, second = a.seal(b"1"), a.seal(b"2")
    with pytest.raises(ChannelBroken):
        _open(b, second)
    a2, b2 = _pair()
    a2.seal(b"lost")
    with pytest.raises(ChannelBroken):
        _open(b2, a2.seal(b"after the lost one"))
    del first


def test_a_frame_reflected_back_to_its_sender_fails() -> None:
    a, _ = _pair()
    with pytest.raises(ChannelBroken):
        _open(a, a.seal(b"mirror"))


def test_length_bounds_are_checked_on_the_header_alone() -> None:
    _, b = _pair(frame_bytes_max=100)
    with pytest.raises(PeerProtocolError) as oversized:
        b.check_header(b"\xff\xff\xff\xff")
    assert oversized.value.reason == "oversized_frame"
    _, b = _pair(frame_bytes_max=100)
    with pytest.raises(PeerProtocolError) as short:
        b.check_header(TAG_BYTES.to_bytes(4, "big"))
    assert short.value.reason == "short_frame"
    assert _pair(100)[1].check_header((100 + TAG_BYTES).to_bytes(4, "big")) == 116


def test_sender_bounds_and_key_rules() -> None:
    a, _ = _pair(frame_bytes_max=100)
    with pytest.raises(InvalidInput):
        a.seal(b"x" * 101)
    with pytest.raises(InvalidInput):
        a.seal(b"")
    with pytest.raises(Exception, match="equal"):
        SecureChannel(KEY_A, KEY_A, frame_bytes_max=100)


async def _read_frames(reader: asyncio.StreamReader, channel: SecureChannel, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        header = await reader.readexactly(4)
        out.append(channel.open(header, await reader.readexactly(channel.check_header(header))))
    return out


@given(
    payloads=st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=30),
)
def test_frames_split_anywhere_across_reads_round_trip(
    payloads: list[bytes], cuts: list[int]
) -> None:
    """The stream is cut at arbitrary points (as TCP may deliver it); the reader that the
    peer connection uses reassembles every frame."""
    a, b = _pair()
    stream = b"".join(a.seal(p) for p in payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})

    async def run() -> list[bytes]:
        reader = asyncio.StreamReader()
        for start, end in itertools.pairwise(points):
            reader.feed_data(stream[start:end])
        reader.feed_eof()
        return await _read_frames(reader, b, len(payloads))

    assert asyncio.run(run()) == payloads
