"""The module gate: one call inside a module at a time, in arrival order, bounded."""

from __future__ import annotations

import threading
import time

import pytest

from trusted_ledger.custody.gate import ModuleGate
from trusted_ledger.errors import SignerBusy


def test_calls_never_overlap_and_results_come_back() -> None:
    gate = ModuleGate("unit-a", queue_depth_max=64)
    inside = 0
    overlaps = 0
    results: list[int] = []
    lock = threading.Lock()

    def guarded(i: int) -> int:
        nonlocal inside, overlaps
        inside += 1
        overlaps += inside > 1
        time.sleep(0)  # invite a thread switch while "inside the module"
        inside -= 1
        return i * 2

    def worker(base: int) -> None:
        for i in range(300):
            value = gate.call(lambda i=i: guarded(base + i), timeout_s=10)
            with lock:
                results.append(value)

    threads = [threading.Thread(target=worker, args=(n * 1000,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == 0
    assert sorted(results) == sorted(2 * (n * 1000 + i) for n in range(6) for i in range(300))


def test_waiters_are_served_in_arrival_order() -> None:
    gate = ModuleGate("unit-b", queue_depth_max=8)
    release = threading.Event()
    order: list[int] = []
    holder = threading.Thread(target=gate.call, args=(release.wait,), kwargs={"timeout_s": 5})
    holder.start()
    time.sleep(0.05)
    waiters = []
    for n in range(5):
        waiter = threading.Thread(
            target=gate.call, args=(lambda n=n: order.append(n),), kwargs={"timeout_s": 5}
        )
        waiter.start()
        waiters.append(waiter)
        time.sleep(0.02)  # arrival order is known
    release.set()
    for thread in [holder, *waiters]:
        thread.join()
    assert order == [0, 1, 2, 3, 4]


def test_bounds_raise_signer_busy_and_errors_lose_their_frames() -> None:
    gate = ModuleGate("unit-c", queue_depth_max=1)
    release = threading.Event()
    holder = threading.Thread(target=gate.call, args=(release.wait,), kwargs={"timeout_s": 5})
    holder.start()
    time.sleep(0.05)
    with pytest.raises(SignerBusy, match="stayed busy"):
        gate.call(lambda: None, timeout_s=0.05)
    waiter = threading.Thread(target=gate.call, args=(lambda: None,), kwargs={"timeout_s": 5})
    waiter.start()
    time.sleep(0.05)
    with pytest.raises(SignerBusy, match="already waiting"):
        gate.call(lambda: None, timeout_s=1)
    release.set()
    holder.join()
    waiter.join()

    def fails() -> None:
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside") as caught:
        gate.call(fails, timeout_s=1)
    frames = []
    traceback = caught.value.__traceback__
    while traceback is not None:
        frames.append(traceback.tb_frame.f_code.co_name)
        traceback = traceback.tb_next
    assert "fails" not in frames  # the frame inside the module did not escape
    assert gate.call(lambda: 7, timeout_s=1) == 7  # and the gate is free again
