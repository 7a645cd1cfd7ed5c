"""``trusted-ledger hsm …``, ``keys …`` and ``audit …``: operators' custody commands.

PINs come from ``--pin-env VAR``, ``--pin-file PATH`` or a terminal prompt, never from an
argument value. Every failure the operator can fix (wrong PIN, missing token, missing
module, unsupported mechanism) reaches ``cli.main`` as a package error and is printed as
one line that says what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trusted_ledger.cli.audit_anchors import register_anchors
from trusted_ledger.cli.audit_bundle import register_bundle
from trusted_ledger.custody.audit_verify import export_csv, verify_trail
from trusted_ledger.custody.guard import SigningGuard
from trusted_ledger.custody.inventory import KeyInfo
from trusted_ledger.custody.keyspec import KeyAlgorithm, PublicKey
from trusted_ledger.custody.module_admin import ModuleReport, init_token, inspect_module
from trusted_ledger.custody.pin import Pin, pin_from_env, pin_from_file, pin_from_prompt
from trusted_ledger.custody.profiles import HsmProfile, load_profile
from trusted_ledger.custody.token import TokenPool
from trusted_ledger.errors import MechanismUnsupported, TokenNotFound

PROFILE_DEFAULT = "softhsm2"


def register(subparsers: Any) -> None:
    _register_hsm(subparsers)
    _register_keys(subparsers)
    _register_audit(subparsers)


def _register_hsm(subparsers: Any) -> None:
    hsm = subparsers.add_parser("hsm", help="PKCS#11 modules and tokens")
    sub = hsm.add_subparsers(dest="hsm_command", metavar="ACTION", required=True)
    doctor = sub.add_parser(
        "doctor", help="module, slots, tokens, and whether they offer what the profile needs"
    )
    _module_options(doctor)
    doctor.add_argument("--token", help="check this token (and the login, with a PIN source)")
    _pin_options(doctor, required=False)
    doctor.set_defaults(handler=_cmd_doctor)
    init = sub.add_parser("init-token", help="create a development token (SoftHSM, TPM)")
    _module_options(init)
    init.add_argument("--token", required=True, help="label of the new token")
    _pin_options(init, required=True)
    init.add_argument("--so-pin-env", metavar="VAR", help="read the SO PIN from $VAR")
    init.add_argument("--so-pin-file", type=Path, help="read the SO PIN from a mode-600 file")
    init.set_defaults(handler=_cmd_init_token)


def _register_keys(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="keys on a token")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    generate = sub.add_parser("generate", help="generate a non-extractable key on the token")
    _token_options(generate)
    generate.add_argument("--label", required=True, help="label of the new key")
    generate.add_argument(
        "--algorithm", help="ec-p256 (default), ec-secp256k1 or ed25519, as the profile allows"
    )
    generate.add_argument(
        "--guard-state", type=Path, help="also create the signing guard state file for it"
    )
    generate.set_defaults(handler=_cmd_generate)
    listing = sub.add_parser("list", help="inventory of private keys with their attributes")
    _token_options(listing)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_cmd_list)
    show = sub.add_parser("show", help="one key: public key, fingerprint, attributes")
    _token_options(show)
    show.add_argument("--label", required=True)
    show.add_argument("--format", choices=("text", "pem", "der-hex", "sec1-hex", "json"))
    show.set_defaults(handler=_cmd_show)


def _register_audit(subparsers: Any) -> None:
    audit = subparsers.add_parser("audit", help="the key-usage audit trail")
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    export = sub.add_parser("export", help="export the trail as JSON Lines or CSV")
    export.add_argument(
        "log", type=Path, nargs="?", help="the node's audit log (JSON Lines); or --config"
    )
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    export.set_defaults(handler=_cmd_export)
    verify = sub.add_parser("verify", help="check chain, gaps and checkpoint signatures offline")
    verify.add_argument("trail", type=Path, help="a JSON Lines log or export")
    verify.add_argument(
        "--public-key", type=Path, help="PEM of the node key you trust (default: from the trail)"
    )
    verify.set_defaults(handler=_cmd_verify)
    register_anchors(sub)
    register_bundle(sub, export)


def _module_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=PROFILE_DEFAULT, help="HSM profile name or .toml path")
    parser.add_argument("--module", help="PKCS#11 module file (default: from the profile)")


def _token_options(parser: argparse.ArgumentParser) -> None:
    _module_options(parser)
    parser.add_argument("--token", required=True, help="token label")
    parser.add_argument(
        "--allow-unsafe-keys",
        action="store_true",
        help="development only: accept extractable or imported keys",
    )
    _pin_options(parser, required=True)


def _pin_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--pin-env", metavar="VAR", help="read the user PIN from $VAR")
    parser.add_argument("--pin-file", type=Path, help="read the user PIN from a mode-600 file")
    parser.set_defaults(pin_required=required)


def _user_pin(args: argparse.Namespace) -> Pin | None:
    if args.pin_env:
        return pin_from_env(args.pin_env)
    if args.pin_file:
        return pin_from_file(args.pin_file)
    if args.pin_required:
        return pin_from_prompt()
    return None


def _so_pin(args: argparse.Namespace) -> Pin:
    if args.so_pin_env:
        return pin_from_env(args.so_pin_env)
    if args.so_pin_file:
        return pin_from_file(args.so_pin_file)
    return pin_from_prompt("Token SO PIN: ")


def _profile(args: argparse.Namespace) -> HsmProfile:
    return load_profile(args.profile)


def _pool(args: argparse.Namespace) -> TokenPool:
    return TokenPool(
        _profile(args),
        args.token,
        _user_pin(args),
        module_path=args.module,
        allow_unsafe_keys=args.allow_unsafe_keys,
    )


def _cmd_doctor(args: argparse.Namespace) -> int:
    profile = _profile(args)
    report = inspect_module(profile, args.module)
    _print_module_report(profile, report)
    if args.token is None:
        return 0
    chosen = [token for token in report.tokens if token.label == args.token]
    if not chosen:
        raise TokenNotFound(
            f"no token labelled {args.token!r}",
            hint="create one with `trusted-ledger hsm init-token`",
        )
    if chosen[0].mechanisms_missing:
        raise MechanismUnsupported(
            f"token {args.token!r} lacks {', '.join(chosen[0].mechanisms_missing)}",
            hint="restrict keys.algorithms in the profile or use another token",
        )
    pin = _user_pin(args)
    if pin is not None:
        pool = TokenPool(profile, args.token, pin, module_path=args.module)
        keys = pool.list_keys()
        pool.close()
        print(f"login: ok ({len(keys)} private keys)")
    print("doctor: ok")
    return 0


def _print_module_report(profile: HsmProfile, report: ModuleReport) -> None:
    tested = "tested" if profile.tested else "NOT tested"
    print(f"profile: {profile.name} ({tested}) - {profile.description}")
    print(f"module: {report.module_path}")
    print(f"  {report.manufacturer} / {report.description}")
    print(f"  cryptoki {report.cryptoki_version}, library {report.library_version}")
    print(f"required mechanisms: {', '.join(report.required)}")
    print(f"slots with a token: {report.slots}")
    for token in report.tokens:
        state = "initialised" if token.initialized else "free"
        locked = ", USER PIN LOCKED" if token.user_pin_locked else ""
        missing = ", ".join(token.mechanisms_missing) or "none"
        print(
            f"  slot {token.slot_id}: {token.label or '(no label)'!r} [{state}{locked}] "
            f"{token.manufacturer} {token.model} serial {token.serial}; missing: {missing}"
        )


def _cmd_init_token(args: argparse.Namespace) -> int:
    profile = _profile(args)
    so_pin = _so_pin(args)
    user_pin = _user_pin(args)
    assert user_pin is not None  # pin_required: a prompt at worst
    init_token(profile, args.token, so_pin, user_pin, args.module)
    print(f"token {args.token!r} initialised with profile {profile.name}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    pool = _pool(args)
    profile = pool.profile
    algorithm = KeyAlgorithm.parse(args.algorithm) if args.algorithm else profile.default_algorithm
    info = pool.generate_key(args.label, algorithm)
    pool.close()
    if args.guard_state:
        SigningGuard.create(args.guard_state, info.fingerprint)
    print(f"generated {info.algorithm.value} key {info.label!r} id {info.key_id}")
    print(f"fingerprint: {info.fingerprint}")
    print(info.public_key.pem, end="")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    pool = _pool(args)
    keys = pool.list_keys()
    pool.close()
    if args.json:
        print(json.dumps([_key_json(key) for key in keys], indent=2))
        return 0
    print(f"{'label':24} {'algorithm':13} {'fingerprint':17} policy")
    for key in keys:
        verdict = (
            "ok"
            if not key.policy_violations()
            else "VIOLATES: " + "; ".join(key.policy_violations())
        )
        print(f"{key.label:24} {key.algorithm.value:13} {key.fingerprint[:16]}… {verdict}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    pool = _pool(args)
    key = pool.key_info(args.label)
    pool.close()
    form = args.format or "text"
    if form == "pem":
        print(key.public_key.pem, end="")
    elif form == "der-hex":
        print(key.public_key.spki_der.hex())
    elif form == "sec1-hex":
        print(key.public_key.sec1.hex())
    elif form == "json":
        print(json.dumps(_key_json(key), indent=2))
    else:
        print(f"label: {key.label}\nid: {key.key_id}\nalgorithm: {key.algorithm.value}")
        print(f"fingerprint: {key.fingerprint}")
        for name, value in key.attributes.items():
            print(f"{name}: {str(value).lower()}")
        print(key.public_key.pem, end="")
    return 0


def _key_json(key: KeyInfo) -> dict[str, Any]:
    return {
        "label": key.label,
        "id": key.key_id,
        "algorithm": key.algorithm.value,
        "fingerprint": key.fingerprint,
        "public_key_der": key.public_key.spki_der.hex(),
        "attributes": key.attributes,
        "policy_violations": key.policy_violations(),
    }


def _cmd_export(args: argparse.Namespace) -> int:
    data = args.log.read_bytes()
    output = data if args.format == "jsonl" else export_csv(data.splitlines()).encode()
    if args.output:
        args.output.write_bytes(output)
    else:
        sys.stdout.buffer.write(output)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    trusted = PublicKey.from_pem(args.public_key.read_bytes()) if args.public_key else None
    report = verify_trail(args.trail.read_bytes().splitlines(), trusted)
    for record, message in report.problems:
        print(f"record {record}: {message}")
    source = "from the trail itself: compare it" if report.key_from_export else "trusted"
    print(
        f"records: {report.records}, checkpoints verified: {report.checkpoints}, "
        f"not yet checkpointed: {report.uncovered_records}"
    )
    for fingerprint in sorted(report.checkpoint_keys):
        print(f"checkpoint key ({source}): {fingerprint}")
    report.raise_if_invalid()
    print("audit trail: ok")
    return 0
