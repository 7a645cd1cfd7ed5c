"""PIN sources and HSM profile parsing."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from trusted_ledger.custody.keyspec import KeyAlgorithm
from trusted_ledger.custody.pin import pin_from_env, pin_from_file, pin_from_spec
from trusted_ledger.custody.profiles import available_profiles, load_profile, parse_profile
from trusted_ledger.errors import HsmProfileError, PinSourceError


def test_pin_never_shows_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_UNIT_PIN", "s3cr3t-9876")
    pin = pin_from_env("TL_UNIT_PIN")
    assert pin.reveal() == "s3cr3t-9876"
    assert "s3cr3t" not in repr(pin) and "s3cr3t" not in str(pin) and "s3cr3t" not in f"{pin}"


def test_unset_env_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TL_UNIT_PIN", raising=False)
    with pytest.raises(PinSourceError, match="TL_UNIT_PIN is not set"):
        pin_from_env("TL_UNIT_PIN")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o602])
def test_pin_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "pin"
    path.write_text("123456\n")
    path.chmod(mode)
    with pytest.raises(PinSourceError, match="chmod 600") as caught:
        pin_from_file(path)
    assert "123456" not in str(caught.value)


def test_private_pin_file_strips_one_newline(tmp_path: Path) -> None:
    path = tmp_path / "pin"
    path.write_text("12 34\n")
    path.chmod(0o600)
    assert pin_from_file(path).reveal() == "12 34"
    assert pin_from_spec(f"file:{path}").reveal() == "12 34"


def test_prompt_without_terminal_and_bad_spec() -> None:
    with pytest.raises(PinSourceError, match="no terminal"):
        pin_from_spec("prompt")  # pytest's stdin is not a TTY
    with pytest.raises(PinSourceError, match="unknown PIN source"):
        pin_from_spec("1234")


def test_every_shipped_profile_parses() -> None:
    names = available_profiles()
    assert {"softhsm2", "tpm2", "thales-luna", "aws-cloudhsm", "yubihsm2"} <= set(names)
    assert {"entrust-nshield", "utimaco"} <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.default_algorithm in profile.algorithms
        assert profile.tested == (name in {"softhsm2", "tpm2"})
        assert profile.quirks, f"{name} documents no quirks"
    assert load_profile("tpm2").algorithms == (KeyAlgorithm.EC_P256,)


def _softhsm_document() -> dict[str, object]:
    path = Path(__file__).resolve().parents[3] / "hsm_profiles" / "softhsm2.toml"
    return tomllib.loads(path.read_text())


@pytest.mark.parametrize(
    ("table", "key", "value", "message"),
    [
        ("pool", "sessions", 0, "pool.sessions"),
        ("pool", "sessions", "2", "pool.sessions"),
        ("keys", "algorithms", ["rsa-1024"], "unknown key algorithm"),
        ("keys", "default_algorithm", "ed25519x", "unknown key algorithm"),
        ("keys", "capabilities", ["wrap"], "unknown 'wrap'"),
        ("module", "login", "so", "module.login"),
        ("module", "paths", [], "module.paths"),
    ],
)
def test_profile_errors_name_the_setting(table, key, value, message) -> None:
    document = copy.deepcopy(_softhsm_document())
    document[table][key] = value  # type: ignore[index]
    with pytest.raises(HsmProfileError, match=message):
        parse_profile(document)


def test_unknown_profile_lists_known_ones() -> None:
    with pytest.raises(HsmProfileError, match=r"known profiles: .*softhsm2"):
        load_profile("no-such-hsm")
