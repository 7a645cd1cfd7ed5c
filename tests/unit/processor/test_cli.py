"""``trusted-ledger processor run``: argument parsing and MODULE:HANDLER resolution."""

from __future__ import annotations

import pytest

from trusted_ledger.cli import build_parser, main
from trusted_ledger.cli.processor import CONNECT_DEFAULT, load_handler
from trusted_ledger.errors import ConfigurationError
from trusted_ledger.processing.families.intkey import IntkeyHandler
from trusted_ledger.processor import max_occupancy_default
from trusted_ledger.processor.examples.provenance import ProvenanceHandler

PROVENANCE = "trusted_ledger.processor.examples.provenance:ProvenanceHandler"


def make_intkey() -> IntkeyHandler:
    """A factory, as MODULE:HANDLER may name one."""
    return IntkeyHandler()


def test_run_parses_handlers_connect_and_occupancy() -> None:
    args = build_parser().parse_args(
        ["processor", "run", PROVENANCE, "a.b:C", "--connect", "tcp://10.0.0.1:4004",
         "--max-occupancy", "3"]
    )  # fmt: skip
    assert args.handlers == [PROVENANCE, "a.b:C"]
    assert args.connect == "tcp://10.0.0.1:4004"
    assert args.max_occupancy == 3


def test_run_defaults() -> None:
    args = build_parser().parse_args(["processor", "run", PROVENANCE])
    assert (args.connect, args.max_occupancy) == (CONNECT_DEFAULT, max_occupancy_default)


def test_run_needs_a_handler(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["processor", "run"])
    assert exit_info.value.code == 2
    assert "MODULE:HANDLER" in capsys.readouterr().err


def test_load_handler_takes_a_class_or_a_factory() -> None:
    assert isinstance(load_handler(PROVENANCE), ProvenanceHandler)
    assert isinstance(load_handler(f"{__name__}:make_intkey"), IntkeyHandler)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("trusted_ledger.processor.examples.provenance", "is not MODULE:HANDLER"),
        (":ProvenanceHandler", "is not MODULE:HANDLER"),
        ("no_such_module_xyz:Handler", "cannot import module 'no_such_module_xyz'"),
        ("trusted_ledger.processor.examples.provenance:Nope", "has no attribute 'Nope'"),
        ("trusted_ledger.processor.examples.provenance:FAMILY_NAME", "not a class or a factory"),
        ("trusted_ledger.processor.examples.provenance:item_address", "without arguments"),
        ("trusted_ledger.processor.examples.provenance:ItemRecord.decode", "without arguments"),
        ("collections:OrderedDict", "not a trusted_ledger.processing.TransactionHandler"),
    ],
)
def test_load_handler_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_handler(spec)


def test_a_bad_spec_exits_1_with_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["processor", "run", "no_such_module_xyz:Handler"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("trusted-ledger: error: handler 'no_such_module_xyz:Handler'")


def test_a_bad_connect_url_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["processor", "run", PROVENANCE, "--connect", "localhost:4004"]) == 1
    assert "is not a ZMQ endpoint" in capsys.readouterr().err
