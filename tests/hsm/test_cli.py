"""The `trusted-ledger` command against a real SoftHSM token (and the TPM where noted),
run as a separate process exactly as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.hsm.conftest import SO_PIN, USER_PIN, TokenEnv
from trusted_ledger.custody.keyspec import PublicKey

pytestmark = [pytest.mark.hsm, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[2]
CLI_TOKEN = "tl-cli"


def run_cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trusted_ledger.cli", *argv],
        env={
            **os.environ, **env, "TL_PIN": USER_PIN, "TL_SO_PIN": SO_PIN,
            "PYTHONPATH": str(REPO / "src"),
        },
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("trusted-ledger: error: ") and expected in lines[0]


@pytest.fixture(scope="module")
def cli_token(softhsm: TokenEnv) -> dict[str, str]:
    done = run_cli(
        softhsm.env, "hsm", "init-token", "--token", CLI_TOKEN,
        "--so-pin-env", "TL_SO_PIN", "--pin-env", "TL_PIN",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return softhsm.env


TOKEN_ARGS = ("--token", CLI_TOKEN, "--pin-env", "TL_PIN")


def test_init_token_twice_is_refused(cli_token: dict[str, str]) -> None:
    done = run_cli(cli_token, "hsm", "init-token", *TOKEN_ARGS, "--so-pin-env", "TL_SO_PIN")
    one_line_error(done, "already exists")


def test_doctor_reports_token_and_login(cli_token: dict[str, str]) -> None:
    done = run_cli(cli_token, "hsm", "doctor", *TOKEN_ARGS)
    assert done.returncode == 0, done.stderr
    assert f"'{CLI_TOKEN}' [initialised]" in done.stdout
    assert "CKM_ECDSA" in done.stdout and "login: ok" in done.stdout
    assert USER_PIN not in done.stdout + done.stderr


def test_generate_list_show(cli_token: dict[str, str], tmp_path: Path) -> None:
    guard = tmp_path / "k.guard"
    done = run_cli(
        cli_token, "keys", "generate", *TOKEN_ARGS, "--label", "node-key",
        "--guard-state", str(guard),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    fingerprint = done.stdout.split("fingerprint: ")[1].split()[0]
    assert guard.stat().st_size == 118
    ed = run_cli(
        cli_token, "keys", "generate", *TOKEN_ARGS, "--label", "ed", "--algorithm", "ed25519"
    )
    assert ed.returncode == 0, ed.stderr
    listing = json.loads(run_cli(cli_token, "keys", "list", *TOKEN_ARGS, "--json").stdout)
    by_label = {key["label"]: key for key in listing}
    assert by_label["node-key"]["fingerprint"] == fingerprint
    assert by_label["node-key"]["attributes"]["extractable"] is False
    assert by_label["ed"]["algorithm"] == "ed25519"
    pem = run_cli(cli_token, "keys", "show", *TOKEN_ARGS, "--label", "node-key", "--format", "pem")
    assert PublicKey.from_pem(pem.stdout.encode()).fingerprint == fingerprint
    text = run_cli(cli_token, "keys", "show", *TOKEN_ARGS, "--label", "node-key")
    assert "local: true" in text.stdout and "extractable: false" in text.stdout


def test_operator_errors_are_one_line(cli_token: dict[str, str], tmp_path: Path) -> None:
    wrong = run_cli({**cli_token, "TL_WRONG": "999999-wrong"}, "keys", "list",
                    "--token", CLI_TOKEN, "--pin-env", "TL_WRONG")  # fmt: skip
    one_line_error(wrong, "refused the PIN")
    assert "999999" not in wrong.stderr
    one_line_error(
        run_cli(cli_token, "keys", "list", "--token", "absent", "--pin-env", "TL_PIN"),
        "no token labelled 'absent'",
    )
    one_line_error(
        run_cli(cli_token, "keys", "list", *TOKEN_ARGS, "--module", "/nonexistent/p11.so"),
        "does not exist",
    )
    one_line_error(
        run_cli(cli_token, "keys", "generate", *TOKEN_ARGS, "--label", "x",
                "--profile", "tpm2", "--module", _softhsm_module(), "--algorithm", "ed25519"),
        "does not support ed25519",
    )  # fmt: skip
    pin_file = tmp_path / "pin"
    pin_file.write_text(USER_PIN)
    pin_file.chmod(0o644)
    one_line_error(
        run_cli(cli_token, "keys", "list", "--token", CLI_TOKEN, "--pin-file", str(pin_file)),
        "chmod 600",
    )
    one_line_error(
        run_cli(cli_token, "keys", "show", *TOKEN_ARGS, "--label", "nope"), "no private key"
    )


def _softhsm_module() -> str:
    profile = tomllib.loads((REPO / "hsm_profiles" / "softhsm2.toml").read_text())
    return next(path for path in profile["module"]["paths"] if Path(path).exists())


@pytest.mark.tpm
def test_mechanism_the_tpm_lacks(tpm: TokenEnv, tmp_path: Path) -> None:
    document = (REPO / "hsm_profiles" / "tpm2.toml").read_text()
    widened = document.replace('algorithms = ["ec-p256"]', 'algorithms = ["ec-p256", "ed25519"]')
    profile = tmp_path / "tpm2-wide.toml"
    profile.write_text(widened)
    doctor = run_cli(tpm.env, "hsm", "doctor", "--profile", str(profile), "--token", tpm.label)
    one_line_error(doctor, "lacks CKM_EC_EDWARDS_KEY_PAIR_GEN")
    generate = run_cli(
        tpm.env, "keys", "generate", "--profile", str(profile), "--token", tpm.label,
        "--pin-env", "TL_PIN", "--label", "ed", "--algorithm", "ed25519",
    )  # fmt: skip
    one_line_error(generate, "does not offer CKM_EC_EDWARDS_KEY_PAIR_GEN")


@pytest.mark.tpm
def test_tpm_keys_through_the_cli(tpm: TokenEnv) -> None:
    args = ("--profile", "tpm2", "--token", tpm.label, "--pin-env", "TL_PIN")
    done = run_cli(tpm.env, "keys", "generate", *args, "--label", "cli-tpm")
    assert done.returncode == 0, done.stderr
    fingerprint = done.stdout.split("fingerprint: ")[1].split()[0]
    listing = run_cli(tpm.env, "keys", "list", *args, "--json")
    key = {k["label"]: k for k in json.loads(listing.stdout)}["cli-tpm"]
    assert key["fingerprint"] == fingerprint and key["algorithm"] == "ec-p256"
    assert key["attributes"]["local"] is True and key["attributes"]["extractable"] is False
    pem = run_cli(tpm.env, "keys", "show", *args, "--label", "cli-tpm", "--format", "pem")
    assert PublicKey.from_pem(pem.stdout.encode()).fingerprint == fingerprint
    doctor = run_cli(tpm.env, "hsm", "doctor", *args)
    assert doctor.returncode == 0, doctor.stderr
    assert "login: ok" in doctor.stdout and "missing: none" in doctor.stdout
