"""The explorer's trail consistency verifier (audit.js) in real Chromium, against Python.

- Known answers: the page's canonical JSON (docs/formats.md §7.1) and record hash (§7.2)
  equal ``custody.audit.canonical`` / ``record_hash`` on inputs that trip writers up
  (escapes, control characters, DEL, non-ASCII and surrogate pairs, lone surrogates, keys
  whose code-point order differs from their UTF-16 order, nested objects, integers beyond
  2^53 and 2^64), read from JSON text by the page's own parser.
- Differential: real ``audit-consistency`` proofs (§8.5) of trails whose checkpoints a
  SoftHSM key signed (P-256, secp256k1, Ed25519; audit_trail_child.py) and of the running
  node's own trail are judged by ``custody.audit_proof.verify_audit_proof`` and by the page:
  every one is accepted by both, and every one-field edit (each field of ``from``, ``to``
  and each record; records dropped, added, swapped; signatures swapped; checkpoints edited
  with their hash recomputed) gets the same verdict from both, the page naming the step.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.explorer.cdp import Chromium
from tests.node.support import NodeProcess, post_batches, request, statuses
from trusted_ledger.custody import PublicKey
from trusted_ledger.custody.audit import canonical, record_hash
from trusted_ledger.custody.audit_proof import build_audit_proof, verify_audit_proof
from trusted_ledger.errors import ProofMalformed, ProofRejected
from trusted_ledger.processing.families import asset
from trusted_ledger.txn import SigningKey, TransactionBuilder, build_batch

pytestmark = pytest.mark.hsm

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("audit_trail_child.py")
JS_CHUNK_DOCUMENTS = 150
"""Documents per page evaluation (each one a few kB of JSON)."""
P256_ORDER = int("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16)
Trails = dict[str, tuple[Path, PublicKey]]


@pytest.fixture(scope="module")
def trails(tmp_path_factory: pytest.TempPathFactory) -> Trails:
    """algorithm -> (trail file, the SoftHSM key that signed its checkpoints)."""
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM not installed: missing softhsm2-util")
    work = tmp_path_factory.mktemp("audit-trails")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    done = subprocess.run(
        [sys.executable, str(CHILD), str(work)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "DONE" in done.stdout, done.stderr[-3000:]
    found = {
        path.stem: (path, PublicKey.from_spki(bytes.fromhex(path.with_suffix(".spki").read_text())))
        for path in sorted(work.glob("*.jsonl"))
    }
    assert "ec-p256" in found
    return found


def _open_page(node: NodeProcess, browser: Chromium) -> None:
    browser.navigate(f"{node.url}/explorer/")
    browser.wait_for("!!(globalThis.TLAudit && globalThis.TLExplorer)", what="the page's code")


def _checkpoint_seqs(path: Path) -> list[int]:
    whole_lines = path.read_bytes().split(b"\n")[:-1]  # a line being written is left out
    return [
        record["seq"] for record in map(json.loads, whole_lines) if record["kind"] == "checkpoint"
    ]


def _python_accepts(document: Any, key: PublicKey | None) -> bool:
    try:
        verify_audit_proof(document, key)
    except (ProofMalformed, ProofRejected):
        return False
    return True


def _page_verdicts(browser: Chromium, texts: list[str], options_js: str) -> list[dict[str, Any]]:
    """The page's verdict on each JSON text: {ok, failed, detail, facts, note}."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(texts), JS_CHUNK_DOCUMENTS):
        chunk = texts[start : start + JS_CHUNK_DOCUMENTS]
        out += browser.evaluate(
            """(async (texts) => {
              const options = """
            + options_js
            + """;
              const out = [];
              for (const text of texts) {
                const r = await TLAudit.verifyAuditProof(text, options);
                const failed = r.steps.find((s) => s.ok === false);
                out.push({ok: r.ok, failed: r.failed_step, detail: failed ? failed.detail : "",
                          facts: r.facts || null, note: r.note || null,
                          steps: r.steps.map((s) => s.step)});
              }
              return out;
            })("""
            + json.dumps(chunk)
            + ")"
        )
    return out


def _trusted(key: PublicKey) -> str:
    return json.dumps({"trustedKey": {"hex": key.spki_der.hex(), "name": "the SoftHSM key"}})


# --- canonical JSON, known answers -----------------------------------------------------------

CANONICAL_CASES: list[Any] = [
    {"error": 'quote " backslash \\ slash / \b\f\n\r\t end', "kind": "use", "seq": 3},
    {"text": "\x00\x01\x1f \x7f\x80\u00e9\u2028\uffff\U0001f600\U0010ffff", "\ud800": "\udfff x"},
    {"\U0001f600": 1, "\uffff": 2, "\ue000": 3, "a": 4, "B": 5, "": 6, "é": 7},
    {"nested": {"b": [1, {"d": None, "c": True}], "a": {}}, "list": [[], [[]], [False]]},
    {"big": 2**64, "neg": -(2**70), "zero": 0, "unsafe": 2**53 + 1, "time_us": 10**19 + 7},
    {"markup": "<script>alert(1)</script>", "__proto__": {"constructor": "x"}},
]
NOT_JSON_FOR_THE_PAGE = [
    "1.0", "1e3", "-0.5", "01", "-", "NaN", "Infinity", '"\x01"', "[1,]", '{"a":1,}', "1 2",
    '"\\x"', '"\\u12"', "[" * 70 + "]" * 70, "",
]  # fmt: skip
FLOATS_PYTHON_READS = {"1.0", "1e3", "-0.5", "NaN", "Infinity", "[" * 70 + "]" * 70}


def test_canonical_json_matches_python(node: NodeProcess, browser: Chromium) -> None:
    _open_page(node, browser)
    texts = [json.dumps(case) for case in CANONICAL_CASES] + [
        json.dumps(case, ensure_ascii=False) for case in CANONICAL_CASES
    ]
    found = browser.evaluate(
        """(async (texts) => {
          const out = [];
          for (const t of texts) {
            const value = TLAudit.parseJson(t);
            out.push([TLAudit.canonicalJson(value), await TLAudit.recordHash(value)]);
          }
          return out;
        })("""
        + json.dumps(texts)
        + ")"
    )
    expected = [[canonical(c).decode("ascii"), record_hash(c)] for c in CANONICAL_CASES] * 2
    assert found == expected
    # A repeated key keeps its last value, as in Python's json.loads.
    assert browser.evaluate(
        'TLAudit.canonicalJson(TLAudit.parseJson(\'{"a":1,"b":2,"a":3}\'))'
    ) == (canonical(json.loads('{"a":1,"b":2,"a":3}')).decode())
    refused = browser.evaluate(
        """((texts) => texts.map((t) => {
          try { TLAudit.parseJson(t); return "accepted"; } catch (err) { return err.message; }
        }))("""
        + json.dumps(NOT_JSON_FOR_THE_PAGE)
        + ")"
    )
    for text, verdict in zip(NOT_JSON_FOR_THE_PAGE, refused, strict=True):
        assert verdict.startswith("not JSON at offset"), (text, verdict)
        if text not in FLOATS_PYTHON_READS:
            with pytest.raises(ValueError):
                json.loads(text)
    assert "fraction or exponent" in refused[0]


# --- differential: SoftHSM-signed trails -----------------------------------------------------


def test_every_range_verifies_in_both(node: NodeProcess, browser: Chromium, trails: Trails) -> None:
    _open_page(node, browser)
    for algorithm, (path, key) in trails.items():
        seqs = _checkpoint_seqs(path)
        assert len(seqs) >= 3, algorithm
        pairs = [(a, b) for i, a in enumerate(seqs) for b in seqs[i:]]
        texts = [json.dumps(build_audit_proof(path, a, b)) for a, b in pairs]
        python = [verify_audit_proof(json.loads(t), key) for t in texts]
        page = _page_verdicts(browser, texts, _trusted(key))
        for (a, b), py, js in zip(pairs, python, page, strict=True):
            assert js["ok"], (algorithm, a, b, js)
            facts = js["facts"]
            assert (facts["from_seq"], facts["to_seq"], facts["records"]) == (
                py.from_seq, py.to_seq, py.records,
            )  # fmt: skip
            assert facts["key_fingerprint"] == key.fingerprint and not facts["key_from_proof"]
        # Without a key the page, like Python, uses the proof's own key and says so.
        untrusted = _page_verdicts(browser, texts[-1:], "{}")[0]
        assert untrusted["ok"] and untrusted["facts"]["key_from_proof"]
        assert "NOT a known member key" in untrusted["note"]
        assert verify_audit_proof(json.loads(texts[-1])).key_from_proof
        # With a membership that holds the key, the member is named.
        membership = {
            "membership": {
                "source": "test",
                "members": [
                    {"name": "bank-hsm", "hex": key.spki_der.hex(), "fingerprint": key.fingerprint}
                ],
            }
        }
        named = _page_verdicts(browser, texts[-1:], json.dumps(membership))[0]
        assert named["ok"] and named["facts"]["key_member"] == "bank-hsm" and not named["note"]
    assert browser.problems() == []


def _flip_hex(text: str) -> str:
    at = len(text) // 2
    return text[:at] + format(int(text[at], 16) ^ 0x5, "x") + text[at + 1 :]


def _edits(value: Any) -> list[tuple[str, Callable[[Any], Any]]]:
    """One-field edits of a leaf value: (label, change)."""
    if isinstance(value, bool) or value is None:
        return [("to 0", lambda _v: 0)]
    if isinstance(value, int):
        edits: list[tuple[str, Callable[[Any], Any]]] = [("+ 1", lambda v: v + 1)]
        return edits + ([("- 1", lambda v: v - 1)] if value > 0 else [])
    if isinstance(value, str) and value and all(c in "0123456789abcdef" for c in value):
        return [("digit", _flip_hex), ("upper-case", str.upper)]
    if isinstance(value, str):
        return [("+ x", lambda v: v + "x")]
    return []


def _with_hash(record: dict[str, Any]) -> None:
    record["hash"] = record_hash({k: v for k, v in record.items() if k != "hash"})


def _record_mutations(proof: dict[str, Any]) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(label, the step the page must name, document) for one-field edits."""
    made: list[tuple[str, str | None, dict[str, Any]]] = []

    def variant(label: str, step: str | None, change: Callable[[dict[str, Any]], None]) -> None:
        copied = copy.deepcopy(proof)
        change(copied)
        made.append((label, step, copied))

    parts: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str]] = [
        ("from", lambda p: p["from"], "from checkpoint"),
        ("to", lambda p: p["to"], "to checkpoint"),
    ]
    parts += [
        (f"records[{i}]", lambda p, i=i: p["records"][i], "record chain")
        for i in range(len(proof["records"]))
    ]
    for where, pick, step in parts:
        for name, value in pick(proof).items():
            leaves: list[tuple[str, Any, Callable[[dict[str, Any], Any], None]]] = []
            if isinstance(value, list):
                for i, item in enumerate(value):
                    leaves.append((f"{name}[{i}]", item, _list_setter(pick, name, i)))
            else:
                leaves.append((name, value, _dict_setter(pick, name)))
            for label, leaf, setter in leaves:
                for edit_label, edit in _edits(leaf):
                    variant(
                        f"{where}.{label} {edit_label}", step,
                        lambda p, s=setter, e=edit, v=leaf: s(p, e(v)),
                    )  # fmt: skip
            variant(f"{where} without {name}", step, lambda p, k=name, f=pick: f(p).pop(k))
    return made


def _dict_setter(pick: Callable[[Any], Any], name: str) -> Callable[[Any, Any], None]:
    def apply(doc: Any, value: Any) -> None:
        pick(doc)[name] = value

    return apply


def _list_setter(pick: Callable[[Any], Any], name: str, i: int) -> Callable[[Any, Any], None]:
    def apply(doc: Any, value: Any) -> None:
        pick(doc)[name][i] = value

    return apply


PAGE_STRICTER = (("extra", 1), ("version", True))
"""Edits §8 refuses ("exactly the fields listed", "a wrong type") that
``verify_audit_proof`` lets pass (it checks neither unknown top-level fields nor that
``version`` is an integer rather than ``true``): the page must refuse them; Python's verdict
is not compared (reported as a gap in the Python verifier)."""
STRICTER_LABELS = {f"proof {name} = {value!r}" for name, value in PAGE_STRICTER}


def _edit_rehashed(record: dict[str, Any], name: str, edit: Callable[[Any], Any]) -> None:
    record[name] = edit(record[name])
    _with_hash(record)


def _swap(proof: dict[str, Any], i: int) -> None:
    records = proof["records"]
    records[i], records[i + 1] = records[i + 1], records[i]


def _structural_mutations(proof: dict[str, Any]) -> list[tuple[str, str | None, dict[str, Any]]]:
    made: list[tuple[str, str | None, dict[str, Any]]] = []

    def variant(label: str, step: str | None, change: Callable[[dict[str, Any]], None]) -> None:
        copied = copy.deepcopy(proof)
        change(copied)
        made.append((label, step, copied))

    n = len(proof["records"])
    for i in sorted({0, 1, n // 2, n - 1}):
        variant(f"drop records[{i}]", "record count", lambda p, i=i: p["records"].pop(i))
    for i in sorted({0, 1, n // 2, n - 2}):
        variant(f"swap records[{i}] and [{i + 1}]", "record chain", lambda p, i=i: _swap(p, i))
    variant(
        "repeat the last record", "record count", lambda p: p["records"].append(p["records"][-1])
    )
    variant("no records", "record count", lambda p: p["records"].clear())

    def swap_signatures(p: dict[str, Any], rehash: bool) -> None:
        p["from"]["signature"], p["to"]["signature"] = p["to"]["signature"], p["from"]["signature"]
        if rehash:
            _with_hash(p["from"])
            _with_hash(p["to"])

    variant("swap from/to signatures", "from checkpoint", lambda p: swap_signatures(p, False))
    variant("swap signatures, rehash", "checkpoint signatures", lambda p: swap_signatures(p, True))
    variant("to = from", "record count", lambda p: p.__setitem__("to", copy.deepcopy(p["from"])))
    variant("from = to", "record count",
            lambda p: p.__setitem__("from", copy.deepcopy(p["to"])))  # fmt: skip
    variant("from and to swapped", "checkpoint order",
            lambda p: p.update({"from": p["to"], "to": p["from"]}))  # fmt: skip
    # A checkpoint edited and its hash recomputed: what its signature and the chain catch.
    signed = {"kind": "{0} checkpoint", "seq": "{0} checkpoint", "head_seq": "{0} checkpoint",
              "head": "checkpoint signatures", "key": "signing key", "algorithm": "signing key",
              "public_key": "signing key", "signature": "checkpoint signatures"}  # fmt: skip
    for where in ("from", "to"):
        for name, value in proof[where].items():
            if name == "hash":
                continue
            step = signed[name].format(where) if name in signed else None
            if step is None and where == "from":
                step = "from checkpoint in the trail"  # prev, time_us: not from's copy in records
            for edit_label, edit in _edits(value)[:1]:
                variant(
                    f"{where}.{name} {edit_label}, rehashed", step,
                    lambda p, w=where, k=name, e=edit: _edit_rehashed(p[w], k, e),
                )  # fmt: skip
    # A record edited and rehashed: the next record's prev, or the final head, gives it away.
    variant("records[2].latency_us + 1, rehashed", "record chain",
            lambda p: _edit_rehashed(p["records"][2], "latency_us", lambda v: v + 1))  # fmt: skip
    variant("last record edited, rehashed", "final head = to.head",
            lambda p: _edit_rehashed(p["records"][-1], "time_us", lambda v: v + 1))  # fmt: skip
    for name, value in (("version", 2), ("type", "state"), ("records", {}), *PAGE_STRICTER):
        variant(f"proof {name} = {value!r}", "proof document",
                lambda p, k=name, v=value: p.__setitem__(k, v))  # fmt: skip
    for name in ("version", "type", "from", "to", "records"):
        variant(f"proof without {name}", "proof document", lambda p, k=name: p.pop(k))
    return made


def test_one_field_edits_refused_by_both(
    node: NodeProcess, browser: Chromium, trails: Trails
) -> None:
    _open_page(node, browser)
    checked = 0
    for algorithm, (path, key) in trails.items():
        seqs = _checkpoint_seqs(path)
        proof = build_audit_proof(path, seqs[0], seqs[-1])
        assert len(proof["records"]) >= 8
        documents = _record_mutations(proof) + _structural_mutations(proof)
        texts = [json.dumps(doc) for _, _, doc in documents]
        python = [_python_accepts(json.loads(text), key) for text in texts]
        page = _page_verdicts(browser, texts, _trusted(key))
        wrong = []
        for (label, step, _), py, js in zip(documents, python, page, strict=True):
            expected = False if label in STRICTER_LABELS else py  # see PAGE_STRICTER
            if expected != js["ok"] or js["failed"] != step:
                wrong.append((label, step, py, js["ok"], js["failed"], js["detail"]))
        assert wrong == [], (algorithm, len(wrong), wrong[:8])
        # Only the fields no signature covers may change: to's prev and time_us (§8.5).
        accepted = [
            label
            for (label, _, _), py in zip(documents, python, strict=True)
            if py and label not in STRICTER_LABELS
        ]
        assert accepted == ["to.prev digit, rehashed", "to.time_us + 1, rehashed"], accepted
        checked += len(documents)
    assert checked > 600
    assert browser.problems() == []


def test_high_s_and_foreign_keys_refused(
    node: NodeProcess, browser: Chromium, trails: Trails
) -> None:
    """What the page refuses beyond the one-field sweep: a high-S twin of a valid ECDSA
    checkpoint signature (§6.1: verifiers must refuse it), a trusted key that is not the
    signer, and a `from` that is not the checkpoint the ledger anchored."""
    _open_page(node, browser)
    path, key = trails["ec-p256"]
    seqs = _checkpoint_seqs(path)
    proof = build_audit_proof(path, seqs[0], seqs[-1])
    high = copy.deepcopy(proof)
    signature = bytes.fromhex(high["to"]["signature"])
    s = int.from_bytes(signature[32:], "big")
    high["to"]["signature"] = (signature[:32] + (P256_ORDER - s).to_bytes(32, "big")).hex()
    _with_hash(high["to"])
    other_key = trails["ed25519"][1] if "ed25519" in trails else trails["ec-secp256k1"][1]
    anchor = {
        "fingerprint": key.fingerprint, "head_seq": proof["from"]["head_seq"],
        "head_hash": proof["from"]["head"], "signature": proof["from"]["signature"],
    }  # fmt: skip
    wrong_anchor = dict(anchor, head_hash="00" * 32)
    cases = [
        (high, _trusted(key)),
        (proof, _trusted(other_key)),
        (proof, json.dumps({"trustedKey": {"hex": key.spki_der.hex()}, "anchor": anchor})),
        (proof, json.dumps({"trustedKey": {"hex": key.spki_der.hex()}, "anchor": wrong_anchor})),
    ]
    found = [_page_verdicts(browser, [json.dumps(doc)], options)[0] for doc, options in cases]
    assert (found[0]["failed"], "high S" in found[0]["detail"]) == ("checkpoint signatures", True)
    assert found[1]["failed"] == "signing key"
    assert found[2]["ok"] and found[2]["steps"][-1] == "anchored in the ledger"
    assert found[3]["failed"] == "anchored in the ledger"
    assert not _python_accepts(proof, other_key)


# --- differential: the running node's own trail ----------------------------------------------


def test_node_proofs_verify_in_both(node: NodeProcess, browser: Chromium) -> None:
    url = node.url
    issuer = SigningKey.generate()
    builder = TransactionBuilder(issuer, asset.FAMILY_NAME, asset.FAMILY_VERSION)
    trail = node.directory / "audit" / "key-usage.jsonl"
    for round_number in range(8):
        if len(_checkpoint_seqs(trail)) >= 3:
            break
        operation = asset.create_operation(f"AUD{round_number}", "currency", 2)
        batch = build_batch(
            issuer, [builder.build(operation.payload, inputs=operation.inputs,
                                   outputs=operation.outputs)]
        )  # fmt: skip
        status, body = post_batches(url, [batch])
        assert status == 202, body
        assert (
            statuses(url, [batch.header_signature], wait_s=30)[batch.header_signature]["status"]
            == "COMMITTED"
        )
    seqs = _checkpoint_seqs(trail)
    assert len(seqs) >= 3, "the node's trail must hold a few checkpoints (conftest)"
    node_key = PublicKey.from_spki(
        bytes.fromhex(request(f"{url}/status")[1]["data"]["node"]["public_key"])
    )
    paths = ["/proofs/audit"] + [
        f"/proofs/audit?from_seq={a}&to_seq={b}"
        for a, b in [(seqs[0], seqs[-1]), (seqs[1], seqs[2]), (seqs[1], seqs[1])]
    ]
    _open_page(node, browser)
    page = browser.evaluate(
        """(async (paths) => {
          const membership = await TLExplorer.membershipAt(null);
          const out = [];
          for (const path of paths) {
            const answer = await TLUi.apiText(path);
            const r = await TLAudit.verifyAuditProof(answer.text, {envelope: true, membership});
            out.push({status: answer.status, ok: r.ok, failed: r.failed_step, facts: r.facts});
          }
          return out;
        })("""
        + json.dumps(paths)
        + ")"
    )
    for path, found in zip(paths, page, strict=True):
        status, body = request(f"{url}{path}")
        assert status == found["status"] == 200, (path, body)
        python = verify_audit_proof(body["data"], node_key)
        assert found["ok"], (path, found)
        assert (found["facts"]["from_seq"], found["facts"]["to_seq"]) == (
            python.from_seq, python.to_seq,
        )  # fmt: skip
        assert found["facts"]["key_member"] == "this node"  # single mode: the node's own key
    assert browser.problems() == []
