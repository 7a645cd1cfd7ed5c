"""Every call into a PKCS#11 module passes through that module's gate, one call at a time.

Why: python-pkcs11 initialises modules with ``C_Initialize(NULL)``, which by the PKCS#11
specification (v2.40 section 5.4) promises the module that the application never calls it
from two threads *at the same time*; SoftHSM then turns its locks off and two concurrent
threads crash the process. Calls made one after the other from different threads are
within that promise, so the gate is a lock rather than a dedicated thread: an uncontended
call costs a lock acquisition instead of two thread wake-ups, and while one thread is
inside the module (python-pkcs11 releases the GIL there) the others run their Python work.

Rules that keep python-pkcs11 objects from touching the module outside the gate:
- they are created, used and dropped only inside ``call`` (held by ``TokenPool`` fields
  that are themselves read and written only inside ``call``);
- results leaving ``call`` are plain bytes, ints and strings;
- an error leaving ``call`` is cut loose from its traceback first, so no frame holding a
  python-pkcs11 object is freed later on another thread without the gate.

The number of callers waiting at the gate is bounded by ``queue_depth_max``; a full queue
or an expired wait raises ``SignerBusy`` (a ``TemporarilyUnavailable``). Waiters are served
in arrival order.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import TypeVar

from trusted_ledger.errors import SignerBusy
from trusted_ledger.observability.metrics import CUSTODY_QUEUE_DEPTH, CUSTODY_SESSIONS_IN_USE

T = TypeVar("T")


class ModuleGate:
    """Serialises all calls into one PKCS#11 module, first come first served.

    A bare ``threading.Lock`` is not fair: the thread that just released it usually takes
    it again before a woken waiter runs, so with two signing threads one of them starved for
    a whole GIL switch interval (5 ms p99). Here a releasing thread hands the gate directly
    to the oldest waiter.
    """

    def __init__(self, module_name: str, *, queue_depth_max: int) -> None:
        self.module_name = module_name
        self.queue_depth_max = queue_depth_max
        self._state_lock = threading.Lock()  # guards _busy and _waiters, held briefly
        self._busy = False
        self._waiters: collections.deque[threading.Lock] = collections.deque()
        self._holder: int | None = None
        # Read when scraped instead of updated per call: two gauge updates per signature
        # cost as much as the rest of the gate.
        CUSTODY_QUEUE_DEPTH.labels(module=module_name).set_function(lambda: len(self._waiters))
        CUSTODY_SESSIONS_IN_USE.labels(module=module_name).set_function(
            lambda: 1 if self._holder is not None else 0
        )

    def call(self, function: Callable[[], T], *, timeout_s: float) -> T:
        """Run ``function`` alone inside the module; return its result or raise its error."""
        me = threading.get_ident()
        if self._holder == me:
            return function()  # a call made from inside a call already holds the gate
        self._enter(timeout_s)
        self._holder = me
        try:
            return function()
        except BaseException as exc:
            raise _detached(exc) from None
        finally:
            self._holder = None
            self._leave()

    def _enter(self, timeout_s: float) -> None:
        with self._state_lock:
            if not self._busy:
                self._busy = True
                return
            if len(self._waiters) >= self.queue_depth_max:
                raise SignerBusy(
                    f"{self.queue_depth_max} calls already waiting for module {self.module_name}",
                    hint="the token is slower than the request rate; shed load or add tokens",
                )
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        if turn.acquire(timeout=timeout_s):
            return  # handed over by _leave: the gate is ours
        with self._state_lock:
            if turn in self._waiters:
                self._waiters.remove(turn)
                raise SignerBusy(
                    f"module {self.module_name} stayed busy for {timeout_s:.1f} s",
                    hint="the token may be hung; check the device and the module's logs",
                )
        # Handed over between the timeout and the removal: the gate is ours after all.

    def _leave(self) -> None:
        with self._state_lock:
            if self._waiters:
                self._waiters.popleft().release()  # _busy stays True: ownership moves on
            else:
                self._busy = False


def _detached(error: BaseException) -> BaseException:
    """Drop the traceback and chained errors while still inside the gate: they keep frames,
    and so python-pkcs11 objects, alive until some other thread frees them."""
    error.__traceback__ = None
    error.__cause__ = None
    error.__context__ = None
    return error


_gates: dict[str, ModuleGate] = {}
_gates_lock = threading.Lock()


def gate_for_module(module_path: str, *, queue_depth_max: int) -> ModuleGate:
    """The process-wide gate of a module file: python-pkcs11 loads each file once per
    process, so two gates for one file would let two threads into the same module."""
    with _gates_lock:
        gate = _gates.get(module_path)
        if gate is None:
            gate = ModuleGate(module_path, queue_depth_max=queue_depth_max)
            _gates[module_path] = gate
        return gate
