"""Processor subprocesses, a ProcessorServer in the test process, and provenance workloads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.unit.processing.support import KEYS, batch, transaction
from trusted_ledger.processing import HandlerRegistry
from trusted_ledger.processing.tp import ProcessorServer
from trusted_ledger.processor.examples.provenance import (
    ProvenanceOperation,
    handover_operation,
    register_operation,
)
from trusted_ledger.txn import Batch, SigningKey, Transaction

PROVENANCE_SPEC = "trusted_ledger.processor.examples.provenance:ProvenanceHandler"
SDK_INTKEY_SCRIPT = Path(__file__).with_name("sdk_intkey_processor.py")
REGISTER_TIMEOUT_S = 20.0


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


@contextmanager
def processor_server(**options: float) -> Iterator[tuple[ProcessorServer, HandlerRegistry]]:
    """A real ProcessorServer on a free loopback port, its families in a fresh registry."""
    registry = HandlerRegistry()
    server = ProcessorServer(registry, "tcp://127.0.0.1:0", **options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server, registry
    finally:
        server.stop()


class ProcessorProcess:
    """A processor in a child process, its stderr in ``log_path``."""

    def __init__(self, command: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @classmethod
    def kit(
        cls, endpoint: str, log_path: Path, *specs: str, occupancy: int = 4
    ) -> ProcessorProcess:
        command = [
            sys.executable, "-m", "trusted_ledger.cli", "processor", "run",
            *(specs or (PROVENANCE_SPEC,)), "--connect", endpoint,
            "--max-occupancy", str(occupancy), "--log-level", "debug",
        ]  # fmt: skip
        return cls(command, log_path)

    @classmethod
    def sdk_intkey(cls, endpoint: str, log_path: Path, family: str = "intkey") -> ProcessorProcess:
        return cls([sys.executable, str(SDK_INTKEY_SCRIPT), endpoint, family], log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then the exit status (a clean stop is 0)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"processor ignored SIGTERM:\n{self.log()}") from None

    def __enter__(self) -> ProcessorProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.kill()


def wait_registered(
    server: ProcessorServer, family: str, count: int = 1, process: ProcessorProcess | None = None
) -> None:
    def registered() -> bool:
        if process is not None and process.process.poll() is not None:
            raise AssertionError(f"processor exited {process.process.returncode}:\n{process.log()}")
        return sum(p.family == family for p in server.processors()) >= count

    wait_for(registered, REGISTER_TIMEOUT_S, f"{count} processor(s) of {family!r}")


# --- provenance workloads ----------------------------------------------------------------


def provenance_txn(operation: ProvenanceOperation, key: SigningKey) -> Transaction:
    return transaction(key, "provenance", operation.payload, operation.inputs, operation.outputs)


def provenance_workload(items: int, prefix: str = "item") -> list[list[Batch]]:
    """Blocks: register ``items`` items, then two rounds of handovers with thefts mixed in,
    then a batch that is invalid in its second transaction (the whole batch must fail)."""
    holders = KEYS[:4]
    names = [f"{prefix}-{index}" for index in range(items)]
    registrations = [
        batch(provenance_txn(register_operation(name, f"lot {index}"), holders[index % 4]))
        for index, name in enumerate(names)
    ]
    first, second, thefts = [], [], []
    for index, name in enumerate(names):
        owner, next_owner, third = (holders[(index + k) % 4] for k in range(3))
        first.append(provenance_txn(handover_operation(name, next_owner.public_key_hex), owner))
        second.append(provenance_txn(handover_operation(name, third.public_key_hex), next_owner))
        thefts.append(provenance_txn(handover_operation(name, owner.public_key_hex), third))
    handovers = [batch(first[i], second[i]) for i in range(0, items, 2)]
    handovers += [batch(second[i]) for i in range(1, items, 2)]
    handovers.insert(1, batch(first[1]))
    stolen = [batch(thefts[i]) for i in range(0, items, 3)]
    late = provenance_txn(register_operation("late", "x"), holders[0])
    again = provenance_txn(register_operation(names[0], "again"), holders[0])
    duplicate = [batch(late, again)]
    return [registrations, handovers, stolen + duplicate]
