"""External processors against a running node, end to end (issue 5): batches submitted over
the REST API, processed by processors in their own processes, committed, state read back.

Two processors: the kit's provenance example (``trusted-ledger processor run``) and an
intkey-style handler written with the official Sawtooth Python SDK (run under the family
name ``sdkkey``, since a processor may not shadow the node's built-in intkey).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import time
from pathlib import Path

import cbor2
import pytest

from tests.node.support import NodeProcess, init_node, post_batches, request, statuses
from tests.unit.processing.tp.rawtp import COUNTER, RawProcessor, counter_apply
from tests.unit.processor.support import ProcessorProcess
from trusted_ledger.processor.examples.provenance import (
    ItemRecord,
    handover_operation,
    item_address,
    register_operation,
)
from trusted_ledger.txn import Batch, SigningKey, TransactionBuilder, build_batch

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(180)]
SDK_FAMILY = "sdkkey"
needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("sawtooth_sdk") is None,
    reason="sawtooth-sdk not installed (scripts/setup.sh installs it)",
)


def _committed(url: str, batches: list[Batch]) -> None:
    """Submit and wait until committed. Submitted before the processor has registered, a
    batch waits in the pool (its family not served yet), so no registration wait is needed."""
    ids = [b.id for b in batches]
    status, body = post_batches(url, batches)
    assert status == 202, body
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = statuses(url, ids, wait_s=5)
        if all(found[i]["status"] == "COMMITTED" for i in ids):
            return
        assert not any(found[i]["status"] == "INVALID" for i in ids), found
    raise AssertionError(f"not committed in 60 s: {statuses(url, ids)}")


def _state(url: str, address: str) -> bytes:
    status, body = request(f"{url}/state/{address}")
    assert status == 200, body
    return base64.b64decode(body["data"])


@pytest.fixture
def node(tmp_path: Path) -> NodeProcess:
    init_node(tmp_path / "node")
    process = NodeProcess(tmp_path / "node", tmp_path / "node.log")
    assert process.processors is not None, "the node printed no processors: line"
    yield process  # type: ignore[misc]
    process.terminate()


def test_provenance_processor_end_to_end(node: NodeProcess, tmp_path: Path) -> None:
    assert node.processors is not None
    factory, carrier = SigningKey.generate(), SigningKey.generate()
    register = register_operation("pallet-1", "40 crates")
    handover = handover_operation("pallet-1", carrier.public_key_hex)
    first = TransactionBuilder(factory, "provenance", "1.0").build(
        register.payload, inputs=register.inputs, outputs=register.outputs
    )
    second = TransactionBuilder(factory, "provenance", "1.0").build(
        handover.payload, inputs=handover.inputs, outputs=handover.outputs
    )
    batches = [build_batch(factory, [first]), build_batch(factory, [second])]
    # Before any provenance processor is connected the batches wait, saying why.
    assert post_batches(node.url, batches)[0] == 202
    deadline = time.monotonic() + 20
    while True:
        found = statuses(node.url, [batches[0].id])[batches[0].id]
        assert found["status"] == "PENDING", found
        if "provenance" in found.get("waiting", ""):
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    with ProcessorProcess.kit(node.processors, tmp_path / "provenance.log") as processor:
        _committed(node.url, batches)
        connected = request(f"{node.url}/status")[1]["data"]["processors"]
        assert [(p["family"], p["version"]) for p in connected] == [("provenance", "1.0")]
        record = ItemRecord.decode(_state(node.url, item_address("pallet-1")))
        assert record.holder == carrier.public_key_hex
        assert [(e.seq, e.from_holder, e.transaction_id) for e in record.history] == [
            (0, None, first.id),
            (1, factory.public_key_hex, second.id),
        ]
        assert processor.terminate() == 0, processor.log()


@needs_sdk
def test_sawtooth_sdk_processor_end_to_end(node: NodeProcess, tmp_path: Path) -> None:
    assert node.processors is not None
    key = SigningKey.generate()
    namespace = hashlib.sha512(SDK_FAMILY.encode()).hexdigest()[:6]
    address = namespace + hashlib.sha512(b"apples").hexdigest()[-64:]
    builder = TransactionBuilder(key, SDK_FAMILY, "1.0")
    with ProcessorProcess.sdk_intkey(node.processors, tmp_path / "sdk.log", SDK_FAMILY):
        batches = [
            build_batch(key, [builder.build(cbor2.dumps(payload), inputs=[address],
                                            outputs=[address])])
            for payload in (
                {"Verb": "set", "Name": "apples", "Value": 40},
                {"Verb": "inc", "Name": "apples", "Value": 2},
            )
        ]  # fmt: skip
        _committed(node.url, batches[:1])
        _committed(node.url, batches[1:])
        assert cbor2.loads(_state(node.url, address)) == {"apples": 42}


def test_the_ping_settings_of_node_toml_drop_a_silent_processor(tmp_path: Path) -> None:
    """``[processors] ping_interval_ms`` and ``ping_misses_max`` reach the server: with
    100 ms x 2, a processor that registers and then answers nothing is dropped within about
    0.3 s, where the defaults (5 s x 3) would keep it 15 s; one that answers stays."""
    directory = tmp_path / "node"
    init_node(directory)
    config = directory / "node.toml"
    text = config.read_text()
    assert "\nping_interval_ms = 5000\nping_misses_max = 3\n" in text  # node init writes them
    config.write_text(
        text.replace(
            "\nping_interval_ms = 5000\nping_misses_max = 3\n",
            "\nping_interval_ms = 100\nping_misses_max = 2\n",
        )
    )
    node = NodeProcess(directory, tmp_path / "node.log")
    try:
        assert node.processors is not None
        chatty = RawProcessor(node.processors, counter_apply)
        silent = RawProcessor(node.processors, counter_apply, family="quiet", answer_pings=False)
        chatty.start()
        silent.start()

        def families() -> set[str]:
            status, body = request(f"{node.url}/status")
            assert status == 200, body
            return {p["family"] for p in body["data"]["processors"]}

        deadline = time.monotonic() + 8  # well under the defaults' 15 s
        while "quiet" in families():
            assert time.monotonic() < deadline, f"silent processor kept: {node.log_tail()}"
            time.sleep(0.05)
        assert families() == {COUNTER}
        assert silent.pings >= 2
        pings_before = chatty.pings
        time.sleep(0.5)
        assert chatty.pings > pings_before  # pinged every 100 ms, and kept
        assert families() == {COUNTER}
        chatty.stop()
        silent.stop()
    finally:
        node.terminate()
