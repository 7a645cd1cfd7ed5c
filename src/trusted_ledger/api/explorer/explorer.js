// Trusted Ledger explorer: the page's user interface (docs/explorer.md).
//
// Reads only this node's REST API (same origin). Every value from the API is placed with
// textContent or setAttribute, never innerHTML, so a transaction carrying markup stays text.
// Views are addressed by the URL fragment (#block/ID, #batch/ID, #transaction/ID,
// #state/ADDRESS), so the browser's back button and shared links work.
"use strict";

(function () {
  const V = globalThis.TLVerify;
  const P = globalThis.TLProofs;
  const A = globalThis.TLAudit;
  const { api, apiText, code, definitions, el, link, notAvailable, payloadText, replaceChildren,
    reportView, setText, short, showError, table, utc, verifyButton } = globalThis.TLUi;
  const POLL_MS = 1000;
  const BLOCKS_SHOWN_MAX = 20;
  const MEMBERS_SETTING = "tl.consensus.members";
  const page = {
    status: null,
    shownHead: -1,
    blocks: new Map(), // block number -> rendered block (the ones in the table)
    members: null, // {source, onChain, members: [{name, algorithm, spki, fingerprint, hex}]}
    anchors: new Map(), // key fingerprint -> {fingerprint, head_seq, head_hash, signature} (hex)
    polling: false,
  };

  // --- membership ------------------------------------------------------------------------

  /** A setting's state address (docs/families.md, settings). */
  async function settingAddress(key) {
    // Split on "." into at most 4 parts (the 4th keeps any further dots), pad to 4.
    const parts = key.split(".");
    const four = parts.length > 4 ? [...parts.slice(0, 3), parts.slice(3).join(".")] : parts;
    while (four.length < 4) four.push("");
    let address = (await V.sha512Hex("settings")).slice(0, 6);
    for (const part of four) {
      address += V.bytesToHex(await V.sha256(new TextEncoder().encode(part))).slice(0, 16);
    }
    return address;
  }

  async function memberEntry(name, spkiHex, algorithm) {
    const spki = V.hexToBytes(spkiHex, "public_key");
    return { name, algorithm, spki, hex: spkiHex, fingerprint: await V.fingerprint(spki) };
  }

  // The fixed DER prefixes of canonical SubjectPublicKeyInfo (docs/formats.md §6.1): the
  // algorithm identifier (and for EC the curve) decides the key's algorithm.
  const SPKI_PREFIXES = {
    "3059301306072a8648ce3d020106082a8648ce3d030107034200": "ec-p256",
    "3056301006072a8648ce3d020106052b8104000a034200": "ec-secp256k1",
    "302a300506032b6570032100": "ed25519",
  };

  function spkiAlgorithm(spkiHex) {
    const found = Object.keys(SPKI_PREFIXES).find((prefix) => spkiHex.startsWith(prefix));
    return found ? SPKI_PREFIXES[found] : "unknown";
  }

  /**
   * The membership in effect at a height (docs/consortium.md): `tl.consensus.members` in the
   * state the height builds on (`head` = the previous block), else the node's bootstrap
   * membership, which a single-mode node reports as its own key.
   */
  async function membershipAt(headBlockId) {
    const address = await settingAddress(MEMBERS_SETTING);
    const query = headBlockId ? `?head=${headBlockId}` : "";
    const answer = await api(`/state/${address}${query}`);
    if (answer.status === 200) {
      const record = V.decodeCbor(V.base64ToBytes(answer.body.data));
      const text = record instanceof Map ? record.get(MEMBERS_SETTING) : undefined;
      if (typeof text === "string") {
        const members = await Promise.all(JSON.parse(text).map((m) =>
          memberEntry(m.name, m.public_key, spkiAlgorithm(m.public_key))));
        return { source: `on chain, setting ${MEMBERS_SETTING}`, onChain: true, members };
      }
    } else if (answer.status !== 404) {
      throw new Error(`reading ${MEMBERS_SETTING}: HTTP ${answer.status} ${answer.message}`);
    }
    const status = page.status || (await api("/status")).body.data;
    const node = status.node;
    const members = [await memberEntry("this node", node.public_key, spkiAlgorithm(node.public_key))];
    const source = status.consensus
      ? "not on chain, and this bft-mode node does not publish its members file: only its " +
        "own key is known here (verify with trusted-ledger proof verify --members FILE)"
      : "not on chain: the bootstrap membership this single-mode node reports (its own key)";
    return { source, onChain: false, members };
  }

  function memberName(fingerprint) {
    const members = page.members ? page.members.members : [];
    const found = members.find((m) => m.fingerprint === fingerprint);
    return found ? found.name : "unknown";
  }

  async function refreshMembers() {
    try {
      page.members = await membershipAt(null);
    } catch (err) {
      // Say it in the panel; the rest of the page (and the last membership read) stays.
      setText("members-source", `Could not read the membership: ${err.message}`);
      return;
    }
    setText("members-source", `Source: ${page.members.source}.`);
    const body = document.getElementById("members-body");
    replaceChildren(body, page.members.members.map((m) => el("tr", { "data-fingerprint": m.fingerprint },
      el("th", { scope: "row" }, m.name),
      el("td", {}, code(m.fingerprint, 16)),
      el("td", {}, m.algorithm),
      el("td", {}, el("code", { class: "wrap" }, m.hex)))));
  }

  // --- key-usage trail anchors (tl_audit) ------------------------------------------------

  function hexOf(value) {
    return value instanceof Uint8Array ? V.bytesToHex(value) : String(value);
  }

  async function refreshAnchors() {
    const namespace = (await V.sha512Hex("tl_audit")).slice(0, 6);
    let answer;
    try {
      answer = await api(`/state?address=${namespace}&limit=1000`);
    } catch (err) {
      setText("anchors-source", `Could not read the anchors: ${err.message}`);
      return;
    }
    const body = document.getElementById("anchors-body");
    if (answer.status !== 200) {
      setText("anchors-source", answer.status === 404
        ? "Not available on this node (the API answered 404)."
        : `Could not read the anchors: HTTP ${answer.status} ${answer.message}`);
      replaceChildren(body);
      return;
    }
    const rows = [];
    for (const entry of answer.body.data) {
      try {
        const record = V.decodeCbor(V.base64ToBytes(entry.data));
        const fingerprint = hexOf(record.get("fingerprint"));
        page.anchors.set(fingerprint, { fingerprint, head_seq: record.get("head_seq"),
          head_hash: hexOf(record.get("head_hash")), signature: hexOf(record.get("signature")) });
        rows.push(el("tr", { "data-fingerprint": fingerprint },
          el("th", { scope: "row" }, memberName(fingerprint)),
          el("td", {}, code(fingerprint, 10)),
          el("td", {}, String(record.get("head_seq"))),
          el("td", {}, code(hexOf(record.get("head_hash")), 10)),
          el("td", {}, String(record.get("anchors"))),
          el("td", {}, link(`transaction/${record.get("transaction_id")}`,
            short(String(record.get("transaction_id")), 10))),
          el("td", {}, verifyButton("Verify", `/proofs/state/${entry.address}`,
            P.verifyAnchorProof,
            (proof) => proofOptions(proof, { expectedAddress: entry.address,
              expectedFingerprint: fingerprint }),
            `Anchor of ${memberName(fingerprint)} (${short(fingerprint, 12)}), trail head ` +
              `${record.get("head_seq")}`,
            document.getElementById("anchors-report")))));
      } catch (err) {
        rows.push(el("tr", {}, el("td", { colspan: 7 }, `${entry.address}: unreadable (${err.message})`)));
      }
    }
    setText("anchors-source", rows.length
      ? `Source: tl_audit state (namespace ${namespace}) at block ${short(answer.body.head)}.`
      : `No trail anchored on this chain yet (tl_audit namespace ${namespace} is empty).`);
    replaceChildren(body, rows);
  }

  // --- key-usage trail consistency (GET /proofs/audit, docs/formats.md §8.5) -------------

  /** Fetch /proofs/audit for (fromSeq, toSeq) ("" = the node's default), check it against the
   * membership and, given the ledger's anchor of this node's key, against that too. */
  async function verifyTrail(fromSeq, toSeq, anchor) {
    const box = document.getElementById("audit-report");
    const buttons = [...document.querySelectorAll("#audit-form button")];
    const query = [fromSeq === "" ? "" : `from_seq=${fromSeq}`, toSeq === "" ? "" : `to_seq=${toSeq}`]
      .filter(Boolean).join("&");
    const path = `/proofs/audit${query ? `?${query}` : ""}`;
    const what = anchor
      ? `Key-usage trail from the anchored checkpoint (record ${fromSeq}) to the newest`
      : `Key-usage trail ${fromSeq || "(previous checkpoint)"} → ${toSeq || "(newest checkpoint)"}`;
    buttons.forEach((b) => { b.disabled = true; });
    replaceChildren(box, el("p", { class: "hint" }, `fetching ${path} and checking it…`));
    try {
      const answer = await apiText(path);
      if (answer.status !== 200) {
        replaceChildren(box, answer.routeMissing ? notAvailable(what, answer)
          : el("div", { class: "report failed", "data-outcome": "failed", "data-failed-step": "fetch" },
            el("p", { class: "verdict", role: "status" }, `${what}: the node did not send a proof ` +
              `(HTTP ${answer.status}: ${answer.message}).`)));
        return;
      }
      const options = { envelope: true, membership: await membershipAt(null) };
      if (anchor) options.anchor = anchor;
      const result = await A.verifyAuditProof(answer.text, options);
      replaceChildren(box, reportView(result, what));
    } catch (err) {
      replaceChildren(box, reportView({ ok: false, failed_step: "verifier",
        steps: [{ step: "verifier", ok: false, detail: err.message }] }, what));
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  /** "Anchored checkpoint → newest": the checkpoint the ledger holds for this node's key (its
   * record is head_seq + 2, §7.3) up to the node's newest checkpoint. */
  async function verifyTrailSinceAnchor() {
    const node = page.status ? page.status.node.fingerprint : null;
    const anchor = node ? page.anchors.get(node) : undefined;
    if (anchor === undefined) {
      replaceChildren(document.getElementById("audit-report"),
        el("div", { class: "report unavailable", "data-outcome": "unavailable" },
          el("p", { class: "verdict", role: "status" }, "No anchor of this node's key " +
            `(${short(node || "unknown", 16)}) on chain yet: give two checkpoint numbers instead.`)));
      return;
    }
    const fromSeq = String(BigInt(anchor.head_seq) + 2n);
    document.getElementById("audit-from").value = fromSeq;
    document.getElementById("audit-to").value = "";
    await verifyTrail(fromSeq, "", anchor);
  }

  function startTrailForm() {
    document.getElementById("audit-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const fromSeq = document.getElementById("audit-from").value.trim();
      const toSeq = document.getElementById("audit-to").value.trim();
      if (!/^[0-9]*$/.test(fromSeq) || !/^[0-9]*$/.test(toSeq)) {
        showError(document.getElementById("audit-report"),
          "A checkpoint is its record number (digits), or empty for the node's default.");
        return;
      }
      verifyTrail(fromSeq, toSeq, null);
    });
    document.getElementById("verify-audit-anchored").addEventListener("click", verifyTrailSinceAnchor);
  }

  // --- chain head, live ------------------------------------------------------------------

  function blockRow(block) {
    const header = block.header;
    return el("tr", { "data-block-num": header.block_num, "data-block-id": block.header_signature },
      el("th", { scope: "row" }, link(`block/${block.header_signature}`, String(header.block_num))),
      el("td", {}, code(block.header_signature, 16)),
      el("td", {}, utc(header.timestamp_ms)),
      el("td", {}, String(header.batch_count)),
      el("td", {}, `${memberName(header.proposer.fingerprint)} (${short(header.proposer.fingerprint, 8)})`),
      el("td", {}, String(block.certificate.votes.length)));
  }

  async function refreshBlocks(headNumber) {
    const missing = Math.min(headNumber - page.shownHead, BLOCKS_SHOWN_MAX);
    if (missing <= 0) return;
    const answer = await api(`/blocks?limit=${missing}&start=${headNumber}`);
    if (answer.status !== 200) throw new Error(`/blocks: HTTP ${answer.status} ${answer.message}`);
    const body = document.getElementById("blocks-body");
    const fresh = answer.body.data.filter((b) => b.header.block_num > page.shownHead);
    fresh.sort((a, b) => a.header.block_num - b.header.block_num);
    for (const block of fresh) {
      page.blocks.set(block.header.block_num, block);
      body.prepend(blockRow(block)); // newest on top
    }
    while (body.rows.length > BLOCKS_SHOWN_MAX) {
      const last = body.rows[body.rows.length - 1];
      page.blocks.delete(Number(last.dataset.blockNum));
      last.remove();
    }
    page.shownHead = Math.max(page.shownHead, headNumber);
  }

  async function poll() {
    if (page.polling) return; // one poll at a time: a slow node must not pile requests up
    page.polling = true;
    try {
      const answer = await api("/status");
      if (answer.status !== 200) throw new Error(`/status: HTTP ${answer.status}`);
      const status = answer.body.data;
      const first = page.status === null;
      page.status = status;
      setText("chain-id", status.chain_id);
      setText("pending", status.pending_batches);
      setText("node-key", short(status.node.fingerprint, 16));
      document.getElementById("node-key").title = status.node.fingerprint;
      const consensus = status.consensus;
      setText("consensus", consensus
        ? `${consensus.mode}: ${consensus.members} members, ${consensus.peers_connected} peers connected`
        : "single node");
      if (first) {
        await refreshMembers(); // the anchors name members: members first
        await refreshAnchors();
      }
      if (status.head) {
        setText("height", status.head.block_num);
        setText("head-id", short(status.head.block_id, 24));
        document.getElementById("head-id").title = status.head.block_id;
        if (status.head.block_num > page.shownHead) {
          const grew = !first;
          if (grew) await refreshMembers(); // a block may have changed the membership
          await refreshBlocks(status.head.block_num);
          if (grew) await refreshAnchors();
        }
      } else {
        setText("height", "no genesis yet");
      }
      setText("live", `live: block ${status.head ? status.head.block_num : "–"}, ` +
        `updated ${new Date().toLocaleTimeString()}`);
      document.getElementById("live-dot").className = "dot ok";
    } catch (err) {
      setText("live", `node unreachable (${err.message}); retrying`);
      document.getElementById("live-dot").className = "dot down";
    } finally {
      page.polling = false;
    }
  }
  async function proofOptions(proof, extra = {}) {
    let previous = null;
    try {
      const header = await P.decodeHeader(V.hexToBytes(proof.block.header));
      previous = header.number === 0 ? null : header.previous_block_id;
    } catch (err) {
      previous = null; // the verifier reports the broken header itself
    }
    return { membership: await membershipAt(previous), ...extra };
  }

  // --- detail views ----------------------------------------------------------------------
  async function showBlock(detail, ref) {
    const path = /^[0-9]+$/.test(ref) ? `/blocks/num/${ref}` : `/blocks/${ref}`;
    const answer = await api(path);
    if (answer.status !== 200) return showError(detail, `Block ${ref}: ${answer.message}`);
    const block = answer.body.data;
    const header = block.header;
    const certificate = block.certificate;
    const verify = el("button", { type: "button", class: "verify", id: "verify-block" },
      "Verify block in this browser");
    const result = el("div", { class: "verify-result", "aria-live": "polite" });
    verify.addEventListener("click", async () => {
      verify.disabled = true;
      const previous = header.block_num === 0 ? null : header.previous_block_id;
      const membership = await membershipAt(previous);
      replaceChildren(result, reportView(await P.verifyRenderedBlock(block, membership),
        `Block ${header.block_num}`));
      verify.disabled = false;
    });
    replaceChildren(detail,
      el("h3", { id: "detail-title" }, `Block ${header.block_num}`),
      definitions([
        ["Block id", code(block.header_signature)],
        ["Previous block", header.block_num === 0 ? "none (genesis)"
          : link(`block/${header.previous_block_id}`, short(header.previous_block_id, 24))],
        ["Chain id", header.chain_id],
        ["Time (UTC)", utc(header.timestamp_ms)],
        ["State root", code(header.state_root_hash)],
        ["Batch root", code(header.batch_root)],
        ["Consensus round", String(header.consensus_round)],
        ["Proposer", [memberName(header.proposer.fingerprint), " — ",
          code(header.proposer.fingerprint, 24), ` (${header.proposer.algorithm})`]],
        ["Proposer signature", code(block.proposer_signature, 32)],
      ]),
      el("h4", {}, `Batches (${header.batch_count})`),
      header.batch_ids.length
        ? el("ul", { class: "ids", id: "block-batches" }, header.batch_ids.map((id) =>
          el("li", {}, link(`batch/${id}`, id, { "data-batch-id": id, class: "mono" }))))
        : el("p", { class: "hint" }, "No batches."),
      table(`Commit certificate: height ${certificate.height}, round ${certificate.round}, ` +
        `${certificate.votes.length} vote(s)`,
        ["Member", "Fingerprint", "Algorithm", "Signature"],
        certificate.votes.map((v) => [memberName(v.signer_fingerprint), code(v.signer_fingerprint, 24),
          v.algorithm || "key not known to this node", code(v.signature, 24)]),
        { id: "certificate-votes" }),
      el("div", { class: "verify-box" }, verify, result));
  }

  async function showBatch(detail, id) {
    const [answer, statuses] = await Promise.all([api(`/batches/${id}`),
      api(`/batch_statuses?id=${id}`)]);
    const status = statuses.status === 200 ? statuses.body.data[0].status : "unknown";
    if (answer.status !== 200) {
      return showError(detail, `Batch ${short(id)}: ${answer.message} (status ${status})`);
    }
    const batch = answer.body.data;
    replaceChildren(detail,
      el("h3", { id: "detail-title" }, "Batch"),
      definitions([
        ["Batch id", code(batch.header_signature)],
        ["Status", el("span", { id: "batch-status" }, status)],
        ["Block", link(`block/${answer.body.block_id}`, `${answer.body.block_num} (${short(answer.body.block_id)})`)],
        ["Signer", code(batch.header.signer_public_key)],
      ]),
      transactionsTable(batch.transactions),
      verifyButton("Verify batch inclusion in this browser", `/proofs/batches/${id}`,
        P.verifyBatchProof, (proof) => proofOptions(proof, { expectedBlockId: answer.body.block_id }),
        `Batch ${short(id)}`));
  }

  function transactionsTable(transactions) {
    return table(`Transactions (${transactions.length})`,
      ["Transaction", "Family", "Inputs", "Outputs"],
      transactions.map((t) => [link(`transaction/${t.header_signature}`, short(t.header_signature)),
        `${t.header.family_name} ${t.header.family_version}`,
        addressList(t.header.inputs), addressList(t.header.outputs)]),
      { id: "batch-transactions" });
  }

  function addressList(addresses) {
    return el("ul", { class: "ids" }, addresses.map((a) =>
      el("li", {}, a.length === 70 ? link(`state/${a}`, short(a, 20), { class: "mono" }) : code(a))));
  }

  async function showTransaction(detail, id) {
    const [answer, receipts] = await Promise.all([api(`/transactions/${id}`), api(`/receipts?id=${id}`)]);
    if (answer.status !== 200) return showError(detail, `Transaction ${short(id)}: ${answer.message}`);
    const transaction = answer.body.data;
    const header = transaction.header;
    const changes = receipts.status === 200 ? receipts.body.data[0].state_changes : [];
    replaceChildren(detail,
      el("h3", { id: "detail-title" }, "Transaction"),
      definitions([
        ["Transaction id", code(transaction.header_signature)],
        ["Family", `${header.family_name} ${header.family_version}`],
        ["Block", link(`block/${answer.body.block_id}`, `${answer.body.block_num}`)],
        ["Signer", code(header.signer_public_key)],
        ["Nonce", header.nonce],
        ["Inputs", addressList(header.inputs)],
        ["Outputs", addressList(header.outputs)],
        ["Dependencies", header.dependencies.length ? el("ul", { class: "ids" },
          header.dependencies.map((d) => el("li", {}, link(`transaction/${d}`, short(d))))) : "none"],
        ["Payload", el("code", { class: "wrap" }, payloadText(transaction.payload))],
      ]),
      table("State changes (receipt)", ["Address", "Change", "Value bytes"],
        changes.map((c) => [link(`state/${c.address}`, short(c.address, 20)), c.type,
          c.value === undefined ? "" : String(V.base64ToBytes(c.value).length)])),
      verifyButton("Verify transaction inclusion in this browser", `/proofs/transactions/${id}`,
        P.verifyTransactionProof, (proof) => proofOptions(proof, { expectedBlockId: answer.body.block_id }),
        `Transaction ${short(id)}`));
  }

  /** CBOR payloads (the built-in families) as JSON-like text, otherwise hex. */  async function showState(detail, address, blockNumber) {
    const target = document.getElementById("state-result");
    const head = blockNumber === "" || blockNumber === undefined ? null : blockNumber;
    let query = "";
    if (head !== null) {
      const block = await api(`/blocks/num/${head}`);
      if (block.status !== 200) return showError(target, `Block ${head}: ${block.message}`);
      query = `?head=${block.body.data.header_signature}`;
    }
    const answer = await api(`/state/${address}${query}`);
    const value = answer.status === 200 ? answer.body.data : null;
    if (answer.status !== 200 && answer.status !== 404) {
      return showError(target, `State ${short(address)}: ${answer.message}`);
    }
    const proofPath = `/proofs/state/${address}${head === null ? "" : `?block=${head}`}`;
    replaceChildren(target,
      definitions([
        ["Address", code(address)],
        ["At", head === null ? "the head" : `block ${head}`],
        ["Value", value === null ? "absent (no value at this address)"
          : el("code", { class: "wrap", id: "state-value" }, payloadText(value))],
      ]),
      verifyButton("Verify this state entry in this browser", proofPath, P.verifyStateProof,
        (proof) => proofOptions(proof, { expectedAddress: address }), `State ${short(address)}`));
    if (detail) target.scrollIntoView({ block: "nearest" });
  }

  async function route() {
    const detail = document.getElementById("detail");
    const view = decodeURIComponent(location.hash.slice(1));
    const [kind, ref] = view.split("/");
    try {
      if (kind === "block" && ref) await showBlock(detail, ref);
      else if (kind === "batch" && ref) await showBatch(detail, ref);
      else if (kind === "transaction" && ref) await showTransaction(detail, ref);
      else if (kind === "state" && ref) {
        document.getElementById("state-address").value = ref;
        await showState(detail, ref, document.getElementById("state-block").value);
      }
    } catch (err) {
      showError(detail, `Could not show ${kind}: ${err.message}`);
    }
    // Which view is on screen, for people's scripts and the tests: set once it is drawn.
    const shown = kind === "state" ? document.getElementById("state-result") : detail;
    shown.dataset.view = view;
  }

  /** Where a search term leads: a number is a block, 64 hex a block id, 128 hex a batch or
   * a transaction (asked in that order), 70 hex a state address. */
  async function search(term) {
    const text = term.trim().toLowerCase();
    if (/^[0-9]+$/.test(text)) return `block/${text}`;
    if (/^[0-9a-f]{64}$/.test(text)) return `block/${text}`;
    if (/^[0-9a-f]{70}$/.test(text)) return `state/${text}`;
    if (/^[0-9a-f]{128}$/.test(text)) {
      return (await api(`/batches/${text}`)).status === 200 ? `batch/${text}` : `transaction/${text}`;
    }
    return null;
  }

  function start() {
    document.getElementById("search-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const target = await search(document.getElementById("search").value);
      if (target === null) {
        showError(document.getElementById("detail"),
          "Give a block number, or 64 (block), 128 (batch or transaction) or 70 (address) hex characters.");
      } else if (location.hash === `#${target}`) {
        route();
      } else {
        location.hash = target;
      }
    });
    document.getElementById("state-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const address = document.getElementById("state-address").value.trim().toLowerCase();
      if (!/^[0-9a-f]{70}$/.test(address)) {
        showError(document.getElementById("state-result"), "An address is 70 hex characters.");
        return;
      }
      showState(null, address, document.getElementById("state-block").value.trim());
    });
    startTrailForm();
    window.addEventListener("hashchange", route);
    poll().then(route);
    setInterval(poll, POLL_MS);
  }

  // For tests and the curious: the verifiers and the page's membership lookup.
  globalThis.TLExplorer = Object.freeze({
    membershipAt,
    poll,
    proofOptions,
    settingAddress,
    verifyBatchProof: async (proof, options) =>
      P.verifyBatchProof(proof, options || (await proofOptions(proof))),
    verifyStateProof: async (proof, options) =>
      P.verifyStateProof(proof, options || (await proofOptions(proof))),
    verifyTransactionProof: async (proof, options) =>
      P.verifyTransactionProof(proof, options || (await proofOptions(proof))),
    verifyAuditProof: async (proof, options) =>
      A.verifyAuditProof(proof, options || { membership: await membershipAt(null) }),
    verifyTrail,
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
