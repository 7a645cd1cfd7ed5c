"""Regression tests: the minimal failing inputs the fuzz campaigns found, one test each
(docs/reliability.md, "Findings"). Each passed through to an exception outside the
decoder's documented family before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from trusted_ledger.custody.audit import GENESIS_PREV, canonical, record_hash
from trusted_ledger.custody.audit_verify import verify_trail
from trusted_ledger.errors import ConfigurationError, ProcessorRegistrationRefused
from trusted_ledger.node.config import load_config
from trusted_ledger.node.members import load_members
from trusted_ledger.processor._connection import InboundRequest, Response
from trusted_ledger.processor.core import _check_registered
from trusted_ledger.txn.protos import processor_pb2, validator_pb2

from .test_fuzz_files import CONFIG_TEXT, MEMBERS_TEXT
from .test_fuzz_processors import KIT


def _record(fields: dict[str, object]) -> bytes:
    return canonical({**fields, "hash": record_hash(fields)})


_CHECKPOINT = {
    "kind": "checkpoint", "head_seq": -2, "head": "00" * 32, "key": "k", "algorithm": "a",
    "public_key": "00", "signature": "00", "seq": 0, "prev": GENESIS_PREV, "time_us": 1,
}  # fmt: skip


def test_audit_checkpoint_as_first_record_is_reported_not_indexerror() -> None:
    # head_seq -2 == index - 2 at index 0 indexed records[-2]: IndexError on a 1-line trail.
    report = verify_trail([_record(_CHECKPOINT)])
    assert [message for _, message in report.problems] == ["checkpoint head_seq -2 is not seq-2"]


def test_audit_checkpoint_without_head_is_reported_not_keyerror() -> None:
    # Records without a hash field and a checkpoint without "head": None == None passed the
    # head comparison, then checkpoint["head"] raised KeyError.
    use = canonical({"kind": "use", "seq": 0, "prev": GENESIS_PREV, "time_us": 1})
    checkpoint = {k: v for k, v in _CHECKPOINT.items() if k != "head"}
    report = verify_trail([use, use, _record({**checkpoint, "head_seq": 0, "seq": 2})])
    assert (2, "checkpoint head is not 64 lowercase hex characters") in report.problems


def test_audit_checkpoint_head_not_hex_is_reported_not_valueerror() -> None:
    # A record whose (edited) hash field equals a non-hex head reached bytes.fromhex.
    use = canonical({"kind": "use", "seq": 0, "prev": GENESIS_PREV, "time_us": 1, "hash": "zz"})
    report = verify_trail([use, use, _record({**_CHECKPOINT, "head_seq": 0, "seq": 2,
                                              "head": "zz"})])  # fmt: skip
    assert (2, "checkpoint head is not 64 lowercase hex characters") in report.problems


def test_audit_deeply_nested_line_is_reported_not_recursionerror() -> None:
    report = verify_trail([b"[" * 100_000])
    assert report.problems == [(0, "line is not JSON (torn or edited)")]


def _with(text: bytes, old: bytes, new: bytes, tmp_path: Path) -> Path:
    assert old in text
    path = tmp_path / "file.toml"
    path.write_bytes(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("key", [b"[api]\nbind", b"[network]\nbind"])
def test_config_port_of_non_ascii_digits_is_configuration_error(key: bytes, tmp_path: Path) -> None:
    # "²".isdigit() is True but int("²") raises ValueError.
    start = CONFIG_TEXT.index(key) + len(key)
    line_end = CONFIG_TEXT.index(b"\n", start)
    path = tmp_path / "node.toml"
    path.write_bytes(CONFIG_TEXT[:start] + ' = "127.0.0.1:²"'.encode() + CONFIG_TEXT[line_end:])
    with pytest.raises(ConfigurationError, match="must be HOST:PORT"):
        load_config(path)


def test_members_port_of_non_ascii_digits_is_configuration_error(tmp_path: Path) -> None:
    path = _with(MEMBERS_TEXT, b'"127.0.0.1:7000"', '"127.0.0.1:²"'.encode(), tmp_path)
    with pytest.raises(ConfigurationError, match="HOST:PORT"):
        load_members(path)


def test_kit_register_answer_that_does_not_parse_is_a_refusal() -> None:
    # One zero byte (field number 0) made protobuf's DecodeError escape the kit's
    # registration thread: the processor stayed connected and never registered.
    answer = Response(validator_pb2.Message.TP_REGISTER_RESPONSE, b"\x00")
    with pytest.raises(ProcessorRegistrationRefused, match="not a TpRegisterResponse"):
        _check_registered(answer, "intkey", "1.0")


def test_config_file_path_too_long_for_the_file_system_is_configuration_error(
    tmp_path: Path,
) -> None:
    # Path.is_file() raises OSError (ENAMETOOLONG) instead of answering False.
    path = _with(CONFIG_TEXT, b'client_ca_file = ""', b'client_ca_file = "' + b"a" * 5000 + b'"',
                 tmp_path)  # fmt: skip
    with pytest.raises(ConfigurationError, match=r"api\.client_ca_file names"):
        load_config(path)


def test_kit_answers_a_malformed_request_naming_it() -> None:
    # Was answered INTERNAL_ERROR "DecodeError: ..." and logged as a handler failure with a
    # traceback; the node's malformed bytes are now named as such.
    KIT._process(InboundRequest(validator_pb2.Message.TP_PROCESS_REQUEST, "c-1", b"\x00", 0))
    _, frame = KIT._connection._outbox.get_nowait()
    response = processor_pb2.TpProcessResponse.FromString(
        validator_pb2.Message.FromString(frame).content
    )
    assert response.status == processor_pb2.TpProcessResponse.INTERNAL_ERROR
    assert response.message.startswith("malformed TP_PROCESS_REQUEST")
