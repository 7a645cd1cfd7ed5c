"""The Sawtooth SDK shim: our protobuf modules match the SDK's, and the SDK imports.

The SDK's generated modules cannot be imported on protobuf >= 4, but their serialized file
descriptors can still be read from the source; every message of each module we serve in
their place must have the same fields (name, number, label, type) and every enum the same
values, or a processor built on the SDK would misread the wire.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from trusted_ledger.processor import sawtooth_compat

SDK_SPEC = importlib.util.find_spec("sawtooth_sdk")
needs_sdk = pytest.mark.skipif(
    SDK_SPEC is None, reason="sawtooth-sdk not installed (scripts/setup.sh installs it)"
)


def _sdk_file_descriptor(module: str) -> descriptor_pb2.FileDescriptorProto:
    assert SDK_SPEC is not None and SDK_SPEC.submodule_search_locations
    source = Path(SDK_SPEC.submodule_search_locations[0], "protobuf", f"{module}.py")
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.keyword) and node.arg == "serialized_pb":
            call = node.value
            assert isinstance(call, ast.Call) and isinstance(call.args[0], ast.Constant)
            raw = call.args[0].value.encode("latin1")  # the SDK's own _b() helper
            return descriptor_pb2.FileDescriptorProto.FromString(raw)
    raise AssertionError(f"no serialized descriptor in {source}")


def _our_file_descriptor(module: str) -> descriptor_pb2.FileDescriptorProto:
    ours = importlib.import_module(f"{sawtooth_compat.OUR_PROTOBUF_PACKAGE}.{module}")
    proto = descriptor_pb2.FileDescriptorProto()
    ours.DESCRIPTOR.CopyToProto(proto)
    return proto


def _shape(
    messages: list[descriptor_pb2.DescriptorProto], enums: list[descriptor_pb2.EnumDescriptorProto]
) -> dict[str, object]:
    """Message name -> fields and nested shapes; enum name -> values."""
    shape: dict[str, object] = {}
    for enum in enums:
        shape[enum.name] = sorted((value.name, value.number) for value in enum.value)
    for message in messages:
        fields = sorted((f.number, f.name, f.label, f.type, f.type_name) for f in message.field)
        shape[message.name] = (fields, _shape(list(message.nested_type), list(message.enum_type)))
    return shape


@needs_sdk
@pytest.mark.parametrize("module", sawtooth_compat.SERVED_PROTOBUF_MODULES)
def test_served_module_has_the_sdks_messages_fields_and_enum_values(module: str) -> None:
    sdk = _sdk_file_descriptor(module)
    ours = _our_file_descriptor(module)
    assert sdk.package == ours.package == ""
    sdk_shape = _shape(list(sdk.message_type), list(sdk.enum_type))
    our_shape = _shape(list(ours.message_type), list(ours.enum_type))
    served = sawtooth_compat.PARTLY_SERVED.get(module, tuple(sdk_shape))
    assert set(served) <= set(sdk_shape)
    for name, shape in sdk_shape.items():
        if name not in served:
            assert name not in our_shape, f"{module}: {name} is served; list it as served"
            continue
        assert name in our_shape, f"{module}: the SDK's {name} is missing from ours"
        assert our_shape[name] == shape, f"{module}: {name} differs from the SDK's"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning:sawtooth_sdk", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_sdk
def test_without_the_shim_the_sdk_does_not_import() -> None:
    """The reason the shim exists; if this starts passing, the shim may be retired."""
    done = _run("import sawtooth_sdk.processor.core")
    assert done.returncode != 0
    assert "Descriptors cannot be created directly" in done.stderr


@needs_sdk
def test_with_the_shim_the_sdk_processor_path_imports() -> None:
    done = _run(
        "import trusted_ledger.processor.sawtooth_compat\n"
        "from sawtooth_sdk.processor.core import TransactionProcessor\n"
        "from sawtooth_sdk.processor.handler import TransactionHandler\n"
        "from sawtooth_sdk.processor.exceptions import InvalidTransaction\n"
        "from sawtooth_sdk.protobuf.processor_pb2 import TpProcessRequest\n"
        "from trusted_ledger.txn.protos.processor_pb2 import TpProcessRequest as Ours\n"
        "assert TpProcessRequest is Ours\n"
        "import sawtooth_sdk.messaging.stream as stream, asyncio\n"
        "assert stream.asyncio is not asyncio and not hasattr(asyncio, 'coroutine')\n"
        "print('ok')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


@needs_sdk
def test_installing_after_the_sdk_was_imported_is_refused() -> None:
    done = _run(
        "import sys, types\n"
        "sys.modules['sawtooth_sdk.messaging.stream'] = types.ModuleType('stream')\n"
        "import trusted_ledger.processor.sawtooth_compat\n"
    )
    assert done.returncode != 0
    assert "must be installed before sawtooth_sdk is imported" in done.stderr


def test_legacy_coroutine_runs_generator_and_plain_functions() -> None:
    def plain(value: int) -> int:
        return value + 1

    def generator(value: int):  # type: ignore[no-untyped-def]
        yield from asyncio.sleep(0).__await__()
        result = yield from asyncio.ensure_future(asyncio.sleep(0, value * 2))
        return result

    async def both() -> tuple[int, int]:
        first = await sawtooth_compat._legacy_coroutine(plain)(1)
        second = await sawtooth_compat._legacy_coroutine(generator)(4)
        return first, second

    assert asyncio.run(both()) == (2, 8)
