"""The client commands through ``cli.main``: parsing, key files, and failures before sending.

Flows that need a node's decisions run in test_end_to_end.py against the real API server;
here the node is absent, or a canned server stands in where only transport matters.
"""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import pytest

from tests.unit.client.support import CannedServer, Request, error_answer, json_answer
from trusted_ledger.cli import build_parser, main
from trusted_ledger.client.asset import AssetClient
from trusted_ledger.client.http import LedgerClient
from trusted_ledger.errors import NodeBusy
from trusted_ledger.txn import SigningKey, decode_batch_list


def _closed_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_keygen_writes_a_private_key_and_refuses_to_overwrite(
    key_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "alice", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    private = key_dir / "alice.priv"
    assert out["private_key_file"] == str(private)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (key_dir / "alice.pub").read_text().strip() == out["public_key"]
    before = private.read_bytes()
    assert main(["keygen", "alice"]) == 1
    assert "--force" in capsys.readouterr().err
    assert private.read_bytes() == before
    assert main(["keygen", "alice", "--force"]) == 0
    assert private.read_bytes() != before


def test_keygen_honours_key_dir_over_the_environment(
    key_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other"
    assert main(["keygen", "bob", "--key-dir", str(other)]) == 0
    assert (other / "bob.priv").exists() and not (key_dir / "bob.priv").exists()
    assert "public key (account): 0" in capsys.readouterr().out


def test_an_exposed_key_is_refused_before_any_network_call(
    key_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "alice"]) == 0
    (key_dir / "alice.priv").chmod(0o644)
    code = main(
        [
            "asset",
            "create",
            "USD",
            "--kind",
            "currency",
            "--decimals",
            "2",
            "--key",
            "alice",
            "--url",
            _closed_url(),
        ]
    )
    assert code == 1
    assert "chmod 600" in capsys.readouterr().err


def test_unreachable_node_exits_3_with_the_hint(
    key_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TL_URL", _closed_url())
    assert main(["status"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("trusted-ledger: unavailable:")
    assert "trusted-ledger node run" in err and "--url / $TL_URL" in err


def test_url_flag_overrides_the_environment(
    server: CannedServer,
    key_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.routes["GET", "/blocks"] = lambda _: json_answer({"data": [], "head": "00" * 32})
    monkeypatch.setenv("TL_URL", _closed_url())
    assert main(["block", "list", "--url", server.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert server.requests[0].query["limit"] == ["20"]


@pytest.mark.parametrize(
    "argv",
    [
        ["asset", "create", "USD", "--kind", "bonds", "--decimals", "2", "--key", "k"],
        ["asset", "create", "USD", "--kind", "currency", "--key", "k"],
        ["asset", "issue", "USD", "--amount", "1", "--key", "k"],
        ["asset", "transfer", "USD", "--to", "x", "--amount", "1"],
        ["asset", "pay", "USD", "--key", "k"],
        ["batch", "status"],
        ["keygen"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2


def test_every_client_command_has_url_and_json_where_it_prints_data() -> None:
    parser = build_parser()
    for argv in (
        ["asset", "info", "USD"],
        ["asset", "balance", "USD", "--account", "a"],
        ["batch", "status", "x"],
        ["block", "show"],
        ["block", "list"],
        ["state", "get", "a"],
        ["state", "list"],
        ["status"],
        ["submit", "f"],
        ["asset", "transfer", "USD", "--to", "b", "--amount", "1", "--key", "k"],
    ):
        args = parser.parse_args(argv)
        assert args.url is None and args.json is False, argv
    write = parser.parse_args(["asset", "redeem", "USD", "--amount", "1", "--key", "k"])
    assert write.no_wait is False and write.wait_timeout == 60.0
    assert parser.parse_args(["block", "show"]).ref == "head"


def test_balance_needs_an_account_or_a_key(
    key_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["asset", "balance", "USD", "--url", _closed_url()]) == 1
    assert "--account" in capsys.readouterr().err


def test_node_rejection_is_printed_with_its_message(
    server: CannedServer, key_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server.routes["POST", "/batches"] = lambda _: error_answer(
        400, "Bad Request", "batches[0]: not a BatchList"
    )
    path = tmp_path / "junk.batches"
    path.write_bytes(b"\x0a\x01")
    assert main(["submit", str(path), "--url", server.url]) == 1
    assert "batches[0]: not a BatchList" in capsys.readouterr().err


def test_transfer_many_waits_out_a_full_pool_and_resends_the_same_list(
    server: CannedServer,
) -> None:
    answers = [
        error_answer(429, "Too Many Requests", "pool full", **{"Retry-After": "2"}),
        error_answer(429, "Too Many Requests", "pool full"),
    ]

    def submit(request: Request) -> object:
        if answers:
            return answers.pop(0)
        ids = [b.id for b in decode_batch_list(request.body).batches]
        return json_answer({"link": f"/batch_statuses?id={','.join(ids)}"}, 202)

    server.routes["POST", "/batches"] = submit  # type: ignore[assignment]
    sleeps: list[float] = []
    sender = SigningKey.generate()
    payees = [SigningKey.generate().public_key_hex for _ in range(5)]
    submitted: list[int] = []
    with LedgerClient(server.url) as client:
        assets = AssetClient(client, sender, sleep=sleeps.append)
        ids = assets.transfer_many(
            "USD",
            [(to, 10 + n) for n, to in enumerate(payees)],
            chunk=2,
            on_submitted=submitted.append,
        )
    assert len(ids) == 5 and len(set(ids)) == 5
    bodies = [r.body for r in server.requests]
    assert bodies[0] == bodies[1] == bodies[2]  # one list, sent three times
    assert [len(decode_batch_list(b).batches) for b in bodies[2:]] == [2, 2, 1]
    assert sleeps == [2.0, 1.0]  # the node's advice, then doubled backoff from 0.5 s
    assert submitted == [2, 4, 5]


def test_transfer_many_gives_up_after_its_retry_bound(server: CannedServer) -> None:
    server.routes["POST", "/batches"] = lambda _: error_answer(429, "Too Many Requests", "full")
    with LedgerClient(server.url) as client:
        assets = AssetClient(client, SigningKey.generate(), sleep=lambda s: None)
        with pytest.raises(NodeBusy):
            assets.transfer_many("USD", [(SigningKey.generate().public_key_hex, 1)])
    assert len(server.requests) == 9
