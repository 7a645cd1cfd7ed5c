"""Four threads signing through one TokenPool, with the module gate on or switched off.

argv: gated|ungated token_label key_label; PIN from $TL_TEST_PIN. Prints "clean" when every
signature succeeded; used by test_signer.py as the control experiment for the gate.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Callable
from typing import Any

from trusted_ledger.custody import gate
from trusted_ledger.custody.pin import pin_from_env
from trusted_ledger.custody.profiles import load_profile
from trusted_ledger.custody.token import TokenPool


def _ungated(self: Any, function: Callable[[], Any], *, timeout_s: float) -> Any:
    return function()


def main() -> None:
    mode, token_label, key_label = sys.argv[1:4]
    if mode == "ungated":
        gate.ModuleGate.call = _ungated  # type: ignore[method-assign]
    pool = TokenPool(load_profile("softhsm2"), token_label, pin_from_env("TL_TEST_PIN"))
    errors: list[str] = []

    def work() -> None:
        try:
            for i in range(2500):
                pool.sign(key_label, hashlib.sha256(str(i).encode()).digest())
        except Exception as exc:
            errors.append(type(exc).__name__)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("clean" if not errors else f"errors {errors}", flush=True)


if __name__ == "__main__":
    main()
