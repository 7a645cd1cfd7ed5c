"""``members propose``: the membership a set of --add/--remove/--rotate makes, and the
refusals that name the bad change; ``custody.next_key_label`` in the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.chain.support import SoftwareSigner
from trusted_ledger.cli.members import changed_membership
from trusted_ledger.errors import ConfigurationError, InvalidInput
from trusted_ledger.node.config import config_from_mapping
from trusted_ledger.processing.families.consensus_members import ChainMember

KEYS = [SoftwareSigner().public_key for _ in range(5)]
CURRENT = (
    ChainMember("bank-a", KEYS[0]),
    ChainMember("bank-b", KEYS[1]),
    ChainMember("bank-c", KEYS[2]),
)


def _hex(index: int) -> str:
    return KEYS[index].spki_der.hex()


def test_changes_keep_the_rotation_order_and_append_additions() -> None:
    changed = changed_membership(
        CURRENT,
        add=[f"bank-d={_hex(3)}"],
        remove=["bank-a"],
        rotate=[f"bank-c={_hex(4)}"],
    )
    assert changed == (
        ChainMember("bank-b", KEYS[1]),
        ChainMember("bank-c", KEYS[4]),
        ChainMember("bank-d", KEYS[3]),
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"add": [f"bank-a={_hex(3)}"]}, "--add bank-a: already a member"),
        ({"add": ["bank-d"]}, "is not NAME=HEX_SPKI"),
        ({"add": ["bank-d=zz"]}, "--add bank-d: the key is not hex"),
        ({"add": ["bank-d=00ff"]}, "not a usable public key"),
        ({"add": [f"bank-d={_hex(0)}"]}, "has the same public_key as member 0"),
        ({"remove": ["bank-x"]}, "--remove bank-x: not a member"),
        ({"rotate": [f"bank-x={_hex(3)}"]}, "--rotate bank-x: not a member"),
        ({"remove": ["bank-a", "bank-b", "bank-c"]}, "leaves no member"),
        ({}, "nothing to propose"),
    ],
)
def test_bad_changes_are_refused_naming_the_change(
    change: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        changed_membership(CURRENT, **change)
    assert message in str(caught.value)


def test_next_key_label_must_differ_from_the_key_label(tmp_path: Path) -> None:
    base = {"custody": {"pin_env": "PIN", "key_label": "k1"}}
    config = config_from_mapping(
        {"custody": {**base["custody"], "next_key_label": "k2"}}, tmp_path / "n.toml"
    )
    assert config.custody.next_key_label == "k2"
    assert config.guard_path_of("k2") == config.data_dir / "guard" / "k2.guard"
    with pytest.raises(ConfigurationError, match="next_key_label must differ"):
        config_from_mapping(
            {"custody": {**base["custody"], "next_key_label": "k1"}}, tmp_path / "n.toml"
        )
