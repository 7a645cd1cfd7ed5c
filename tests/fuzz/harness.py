"""What every fuzz target shares: budgets, the mutation strategy, and the decoder property.

The property checked for every input, valid or hostile (docs/reliability.md, "Fuzzing"):

- the decoder returns, or raises an exception of its documented family; any other exception
  (``IndexError``, ``struct.error``, ``UnicodeDecodeError``, protobuf's ``DecodeError`` ...)
  is a bug;
- the peak memory it allocates while decoding is below ``alloc_per_byte * len(input) +
  alloc_const_bytes`` (tracemalloc), so a small input can never claim a large buffer;
- it finishes within the hypothesis ``deadline``: a hang or a quadratic blow-up shows as a
  deadline failure. That is a correctness bound (generous, far above a normal decode), not a
  performance assertion.

Budgets: ``TL_FUZZ_EXAMPLES`` (default 200 per target, the CI run) and
``TL_FUZZ_DEADLINE_MS`` (default 2000). ``scripts/fuzz.sh`` runs the long campaign.
Inputs tried and their outcomes are counted per target and printed at the end of the run
(``tests/fuzz/conftest.py``); ``TL_FUZZ_REPORT=path`` also writes them as JSON.
"""

from __future__ import annotations

import os
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

T = TypeVar("T")

FUZZ_EXAMPLES = int(os.environ.get("TL_FUZZ_EXAMPLES", "") or 200)
FUZZ_DEADLINE_MS = int(os.environ.get("TL_FUZZ_DEADLINE_MS", "") or 2000)
ARBITRARY_BYTES_MAX = 4096
"""Longest arbitrary input; mutations of valid encodings may be longer (their seed's size)."""
ALLOC_PER_BYTE_DEFAULT = 16
ALLOC_CONST_BYTES_DEFAULT = 512 * 1024

# target -> outcome ("accepted" or the exception class name) -> count
OUTCOMES: defaultdict[str, Counter[str]] = defaultdict(Counter)


def fuzz_settings(examples: int | None = None) -> settings:
    """Settings of one fuzz target: the example budget and the per-input deadline.

    ``examples`` scales a target that is much slower per input (a whole REST request)."""
    return settings(
        max_examples=examples if examples is not None else FUZZ_EXAMPLES,
        deadline=timedelta(milliseconds=FUZZ_DEADLINE_MS),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
        print_blob=True,
    )


def scaled(fraction: float) -> int:
    """A budget that is ``fraction`` of the per-target one (at least 20 examples)."""
    return max(20, int(FUZZ_EXAMPLES * fraction))


class EscapedException(AssertionError):
    """A decoder raised outside its documented error family."""


def run_decoder(
    target: str,
    decode: Callable[[bytes], T],
    data: bytes,
    allowed: tuple[type[BaseException], ...],
    *,
    alloc_per_byte: int = ALLOC_PER_BYTE_DEFAULT,
    alloc_const_bytes: int = ALLOC_CONST_BYTES_DEFAULT,
    size: int | None = None,
    classify: Callable[[T], str] | None = None,
) -> T | None:
    """Decode ``data`` under the fuzz property; the result, or None if it was refused with
    an ``allowed`` error. ``size`` overrides the input size the allocation bound scales with
    (for a decoder whose input is not ``data`` itself, e.g. a parsed file); ``classify``
    names an accepted outcome in the counts (an HTTP status, a response status)."""
    bound = alloc_per_byte * (len(data) if size is None else size) + alloc_const_bytes
    measured = _measured(target, decode, data, allowed, classify)
    result, outcome, peak = measured
    if peak > bound:
        # A first pass through a code path may fill a process-wide cache once (linecache
        # reading sources for a logged traceback, a regex compiled on first use); that is
        # not charged to the input. An allocation the input causes happens again.
        _, _, peak = _measured(target, decode, data, allowed, classify)
    OUTCOMES[target][outcome] += 1
    assert peak <= bound, (
        f"{target}: decoding {len(data)} bytes allocated {peak} bytes at peak, bound {bound}"
    )
    return result


def _measured(
    target: str,
    decode: Callable[[bytes], T],
    data: bytes,
    allowed: tuple[type[BaseException], ...],
    classify: Callable[[T], str] | None,
) -> tuple[T | None, str, int]:
    """(result, outcome, peak bytes allocated) of one decode."""
    if not tracemalloc.is_tracing():
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result: T | None = None
    outcome = "accepted"
    try:
        value = decode(data)
        if classify is not None:
            outcome = classify(value)
        result = value
    except allowed as exc:
        outcome = type(exc).__name__
    except Exception as exc:  # the property under test: nothing else may escape
        OUTCOMES[target][f"ESCAPED {type(exc).__name__}"] += 1
        raise EscapedException(
            f"{target}: {type(exc).__name__} escaped the decoder ({exc!r}); input "
            f"{len(data)} bytes: {data[:64].hex()}{'...' if len(data) > 64 else ''}"
        ) from exc
    return result, outcome, tracemalloc.get_traced_memory()[1] - base


_HUGE_PREFIXES = (
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
    b"\x00\x00\x00\x00",
    b"\xff\xff",
    b"\x00\x00",
    b"\xff",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # varint 2**64 - 1
    b"\x80\x80\x80\x80\x10",  # varint 2**32
    b"\xff\xff\xff\xff\x07",  # varint 2**31 - 1
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # varint of 11 bytes
    b"\x80\x00",  # overlong varint zero
)
_OPERATIONS = (
    "flip",
    "set",
    "insert",
    "delete",
    "truncate",
    "extend",
    "splice",
    "huge_length",
    "duplicate",
)


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], operations_max: int = 4) -> bytes:
    """A valid encoding from ``seeds`` with 1..``operations_max`` structure-blind edits:
    bit flips, byte sets, inserts, deletes, truncation, appended bytes, a slice of another
    seed spliced in, a huge or overlong length prefix written over any position, and a
    duplicated slice (a repeated field)."""
    data = bytearray(draw(st.sampled_from(list(seeds))))
    for _ in range(draw(st.integers(1, operations_max))):
        operation = draw(st.sampled_from(_OPERATIONS))
        at = draw(st.integers(0, len(data)))
        if operation in ("flip", "set") and data:
            at = min(at, len(data) - 1)
            if operation == "flip":
                data[at] ^= 1 << draw(st.integers(0, 7))
            else:
                data[at] = draw(st.integers(0, 255))
        elif operation in ("insert", "extend"):
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at:at] = chunk if operation == "insert" else b""
            data += chunk if operation == "extend" else b""
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif operation == "truncate":
            del data[at:]
        elif operation == "splice":
            other = draw(st.sampled_from(list(seeds)))
            start = draw(st.integers(0, len(other)))
            piece = other[start : start + draw(st.integers(1, 64))]
            if draw(st.booleans()):
                data[at : at + len(piece)] = piece
            else:
                data[at:at] = piece
        elif operation == "huge_length":
            prefix = draw(st.sampled_from(_HUGE_PREFIXES))
            data[at : at + len(prefix)] = prefix
        elif operation == "duplicate":
            piece = bytes(data[at : at + draw(st.integers(1, 96))])
            data[at:at] = piece
    return bytes(data)


def inputs(
    seeds: Sequence[bytes], arbitrary_max: int = ARBITRARY_BYTES_MAX
) -> st.SearchStrategy[bytes]:
    """(a) mutations of valid encodings, (b) arbitrary bytes, (c) the seeds themselves."""
    return st.one_of(
        mutated(seeds),
        st.binary(max_size=arbitrary_max),
        st.sampled_from(list(seeds)),
    )
