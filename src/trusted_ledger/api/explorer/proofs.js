// Trusted Ledger explorer: the ledger's formats and proof documents, checked in the browser.
//
// Written from docs/formats.md (§5 state nodes, §6 block header and commit certificate, §8
// proof documents). Each verifier runs named steps in order and reports the first that fails,
// so "verify" says *which* link of the chain of evidence broke:
//   batch id → RFC 6962 path → batch_root in the header → block id = SHA-256(header)
//   → proposer's signature → commit certificate votes by a quorum of the membership.
"use strict";

(function () {
  const V = globalThis.TLVerify;
  const encoder = new TextEncoder();
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const ALGORITHMS_BY_CODE = { 1: "ec-p256", 2: "ec-secp256k1", 3: "ed25519" };
  const KEY_ALGORITHM_CODES = { "ec-p256": 1, "ec-secp256k1": 2, ed25519: 3 };
  const PROOF_VERSION = 1;

  // --- a byte reader that names the field it fails on ------------------------------------

  class Reader {
    constructor(bytes, what) {
      this.bytes = bytes;
      this.at = 0;
      this.what = what;
    }

    take(size, field) {
      if (this.at + size > this.bytes.length) {
        throw new Error(`${this.what}: ${field} runs past the end (${this.bytes.length} bytes)`);
      }
      this.at += size;
      return this.bytes.slice(this.at - size, this.at);
    }

    uint(size, field) {
      const n = V.bytesToBigInt(this.take(size, field));
      return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
    }

    chainId() {
      const length = this.uint(1, "chain_id length");
      if (length < 1 || length > 64) throw new Error(`${this.what}: chain_id of ${length} bytes`);
      return utf8.decode(this.take(length, "chain_id"));
    }

    end() {
      if (this.at !== this.bytes.length) {
        throw new Error(`${this.what}: ${this.bytes.length - this.at} bytes after the last field`);
      }
    }
  }

  function expectMagic(reader, magic) {
    const found = utf8.decode(reader.take(4, "magic"));
    if (found !== magic) throw new Error(`${reader.what}: magic ${found}, expected ${magic}`);
    const version = reader.uint(2, "format_version");
    if (version !== 1) throw new Error(`${reader.what}: format_version ${version}, expected 1`);
  }

  // --- block header and certificate (§6.2, §6.4) -----------------------------------------

  /** The fields of header bytes (§6.2); throws naming the field that is wrong. */
  async function decodeHeader(bytes) {
    const reader = new Reader(bytes, "block header");
    expectMagic(reader, "TLBH");
    const header = { chain_id: reader.chainId(), number: reader.uint(8, "number") };
    header.previous_block_id = V.bytesToHex(reader.take(32, "previous_block_id"));
    header.state_root = reader.take(32, "state_root");
    header.batch_root = reader.take(32, "batch_root");
    const code = reader.uint(1, "proposer_key_algorithm");
    const algorithm = ALGORITHMS_BY_CODE[code];
    if (algorithm === undefined) throw new Error(`block header: unknown key algorithm ${code}`);
    const keyLength = reader.uint(2, "proposer_key_length");
    const key = reader.take(keyLength, "proposer_key");
    header.proposer = { algorithm, spki: key, fingerprint: await V.fingerprint(key) };
    header.timestamp_ms = reader.uint(8, "timestamp_ms");
    header.consensus_round = reader.uint(4, "consensus_round");
    header.batch_count = reader.uint(4, "batch_count");
    reader.end();
    return header;
  }

  /** Header bytes (§6.2) from the API's JSON rendering of a header (docs/api.md). */
  function headerBytesFromJson(header) {
    const code = KEY_ALGORITHM_CODES[header.proposer.algorithm];
    if (code === undefined) throw new Error(`unknown key algorithm ${header.proposer.algorithm}`);
    const key = V.hexToBytes(header.proposer.public_key, "proposer.public_key");
    const chainId = encoder.encode(header.chain_id);
    return V.concat(
      encoder.encode("TLBH"),
      V.uint(1, 2, "format_version"),
      Uint8Array.of(chainId.length),
      chainId,
      V.uint(header.block_num, 8, "block_num"),
      V.hexToBytes(header.previous_block_id, "previous_block_id"),
      V.hexToBytes(header.state_root_hash, "state_root_hash"),
      V.hexToBytes(header.batch_root, "batch_root"),
      Uint8Array.of(code),
      V.uint(key.length, 2, "proposer key length"),
      key,
      V.uint(header.timestamp_ms, 8, "timestamp_ms"),
      V.uint(header.consensus_round, 4, "consensus_round"),
      V.uint(header.batch_count, 4, "batch_count"),
    );
  }

  function decodeCertificate(bytes) {
    const reader = new Reader(bytes, "certificate");
    expectMagic(reader, "TLCC");
    const certificate = {
      chain_id: reader.chainId(),
      height: reader.uint(8, "height"),
      round: reader.uint(4, "round"),
      block_id: reader.take(32, "block_id"),
      votes: [],
    };
    const count = reader.uint(2, "vote_count");
    if (count < 1 || count > 1024) throw new Error(`certificate: ${count} votes`);
    for (let i = 0; i < count; i += 1) {
      const member = V.bytesToHex(reader.take(32, `votes[${i}].fingerprint`));
      const signature = reader.take(64, `votes[${i}].signature`);
      if (i > 0 && member <= certificate.votes[i - 1].fingerprint) {
        throw new Error(`certificate: votes not in strictly ascending fingerprint order at ${i}`);
      }
      certificate.votes.push({ fingerprint: member, signature });
    }
    reader.end();
    return certificate;
  }

  /** The bytes whose SHA-256 is a commit vote's digest (§6.4). */
  function votePreimage(chainId, height, round, blockId) {
    const chain = encoder.encode(chainId);
    return V.taggedPreimage(
      "trusted-ledger/commit-vote/v1",
      V.concat(
        Uint8Array.of(chain.length),
        chain,
        V.uint(height, 8, "height"),
        V.uint(round, 4, "round"),
        blockId,
      ),
    );
  }

  /** floor(2n/3) + 1 (§6.4). */
  function quorum(members) {
    return Math.floor((2 * members) / 3) + 1;
  }

  // --- Sawtooth headers (protobuf, docs/formats.md §4.1): string fields only -------------

  const BATCH_HEADER_FIELDS = { 1: false, 2: true }; // field number -> repeated
  const TRANSACTION_HEADER_FIELDS = {
    1: false, 2: true, 3: false, 4: false, 5: true, 6: false, 7: true, 9: false, 10: false,
  };

  /**
   * The string fields of a header in canonical encoding (§4.1.1): known fields only, in
   * increasing field-number order, singular ones at most once and never empty, minimal
   * varints. Throws naming what is not canonical.
   */
  function decodeStringFields(bytes, what, schema) {
    const fields = new Map();
    let at = 0;
    let last = 0;
    function varint() {
      let value = 0;
      let shift = 0;
      const first = at;
      for (;;) {
        if (at >= bytes.length || shift > 28) throw new Error(`${what}: bad varint`);
        const b = bytes[at];
        at += 1;
        value |= (b & 0x7f) << shift;
        if (!(b & 0x80)) {
          if (b === 0 && at - first > 1) throw new Error(`${what}: varint not in shortest form`);
          return value >>> 0;
        }
        shift += 7;
      }
    }
    while (at < bytes.length) {
      const tag = varint();
      const number = tag >> 3;
      if (!(number in schema)) throw new Error(`${what}: unknown field ${number}`);
      if ((tag & 7) !== 2) throw new Error(`${what}: field ${number} is not length-delimited`);
      if (number < last || (number === last && !schema[number])) {
        throw new Error(`${what}: field ${number} out of order or repeated (not canonical)`);
      }
      last = number;
      const length = varint();
      if (at + length > bytes.length) throw new Error(`${what}: field ${number} overruns`);
      const value = utf8.decode(bytes.slice(at, at + length));
      at += length;
      if (!schema[number] && value === "") throw new Error(`${what}: empty field ${number} written`);
      if (!fields.has(number)) fields.set(number, []);
      fields.get(number).push(value);
    }
    return fields;
  }

  function one(fields, number) {
    const values = fields.get(number) || [];
    return values.length === 1 ? values[0] : "";
  }

  // --- state path (§5) -------------------------------------------------------------------

  function decodeStateNode(encoding) {
    if (encoding[0] === 1) {
      const length = encoding.length >= 5 ? Number(V.bytesToBigInt(encoding.slice(1, 5))) : -1;
      if (encoding.length !== 5 + length) throw new Error("leaf length does not match");
      return { kind: "leaf", value: encoding.slice(5) };
    }
    if (encoding[0] !== 2 || encoding.length < 3) throw new Error("neither a leaf nor a branch");
    const count = (encoding[1] << 8) | encoding[2];
    const children = new Map();
    let at = 3;
    for (let i = 0; i < count; i += 1) {
      const length = encoding[at];
      if (!(length >= 1 && length <= 35) || at + 33 + length > encoding.length) {
        throw new Error(`branch child ${i} is malformed`);
      }
      const label = encoding.slice(at + 1, at + 1 + length);
      if (children.size > 0 && label[0] <= Math.max(...children.keys())) {
        throw new Error("branch children are not in increasing order");
      }
      children.set(label[0], { label, hash: encoding.slice(at + 1 + length, at + 33 + length) });
      at += 33 + length;
    }
    if (at !== encoding.length) throw new Error("bytes after the branch's last child");
    return { kind: "branch", children };
  }

  /** The value `nodes` prove at `address` under `root` (null: proven absent). */
  async function valueFromStatePath(root, address, nodes) {
    const raw = V.hexToBytes(address, "address");
    if (raw.length !== 35) throw new Error("an address is 70 hex characters");
    if (nodes.length < 1 || nodes.length > 36) throw new Error(`${nodes.length} nodes on a path`);
    let expected = root;
    let depth = 0;
    for (let i = 0; i < nodes.length; i += 1) {
      const found = await V.sha256(V.taggedPreimage("trusted-ledger/state-node/v1", nodes[i]));
      if (!V.equalBytes(found, expected)) {
        const parent = i === 0 ? "the header's state_root" : `node ${i - 1}`;
        throw new Error(`node ${i} hashes to ${V.bytesToHex(found).slice(0, 16)}…, ` +
          `${parent} names ${V.bytesToHex(expected).slice(0, 16)}…`);
      }
      const node = decodeStateNode(nodes[i]);
      const last = i === nodes.length - 1;
      if (node.kind === "leaf") {
        if (depth !== 35) throw new Error(`node ${i} is a leaf at depth ${depth}, not 35`);
        if (!last) throw new Error(`nodes follow the leaf at node ${i}`);
        return node.value;
      }
      if (i > 0 && node.children.size < 2) throw new Error(`node ${i}: a branch with < 2 children`);
      if (depth >= 35) throw new Error(`node ${i}: a branch at depth ${depth}`);
      const edge = node.children.get(raw[depth]);
      const onPath = edge !== undefined &&
        V.equalBytes(edge.label, raw.slice(depth, depth + edge.label.length));
      if (!onPath) {
        if (!last) throw new Error(`the address leaves the tree at node ${i}, yet nodes follow`);
        return null;
      }
      if (last) throw new Error(`the path stops at node ${i} but the address goes on`);
      depth += edge.label.length;
      expected = edge.hash;
    }
    throw new Error("unreachable");
  }

  // --- proof documents (§8) --------------------------------------------------------------

  function field(document, name, check, what) {
    const value = document ? document[name] : undefined;
    if (!check(value)) throw new Error(`field ${name}: ${what}`);
    return value;
  }

  const isHex = (value) => typeof value === "string" && /^([0-9a-f]{2})*$/.test(value);
  const isUint = (value) => Number.isInteger(value) && value >= 0;

  const BLOCK_PROOF_FIELDS = ["version", "type", "block"];
  const INCLUSION_FIELDS = ["batch_id", "index", "tree_size", "path"];
  const PROOF_FIELDS = {
    "batch-inclusion": [...BLOCK_PROOF_FIELDS, ...INCLUSION_FIELDS],
    "transaction-inclusion": [...BLOCK_PROOF_FIELDS, ...INCLUSION_FIELDS, "batch_header",
      "transaction_id", "transaction_index", "transaction_header"],
    state: [...BLOCK_PROOF_FIELDS, "address", "value", "nodes"],
  };
  const BLOCK_FIELDS = ["header", "proposer_signature", "certificate"];

  /** Exactly `names`, no more, no fewer (§8: a verifier rejects unknown fields too). */
  function exactFields(object, names, where) {
    const present = Object.keys(object).sort();
    const wanted = [...names].sort();
    const missing = wanted.filter((n) => !present.includes(n));
    const unknown = present.filter((n) => !wanted.includes(n));
    if (missing.length || unknown.length) {
      throw new Error(`${where}: ` + [missing.length ? `missing ${missing.join(", ")}` : "",
        unknown.length ? `unknown ${unknown.join(", ")}` : ""].filter(Boolean).join("; "));
    }
  }

  function checkEnvelope(proof, type) {
    if (!proof || typeof proof !== "object") throw new Error("a proof is a JSON object");
    if (proof.version !== PROOF_VERSION) throw new Error(`version ${proof.version} is not 1`);
    if (proof.type !== type) throw new Error(`type ${proof.type}, expected ${type}`);
    exactFields(proof, PROOF_FIELDS[type], "proof");
    field(proof, "block", (v) => v && typeof v === "object", "must be an object");
    exactFields(proof.block, BLOCK_FIELDS, "block");
    return { detail: `${type}, version ${PROOF_VERSION}` };
  }

  /**
   * Steps for a proof's `block` part. `options.membership` is {source, members: [{name,
   * algorithm, spki, fingerprint}]}; `options.expectedBlockId` the id the page expects.
   */
  async function blockSteps(report, part) {
    const context = {};
    await report.step("block header", async () => {
      context.headerBytes = V.hexToBytes(field(part, "header", isHex, "hex"), "block.header");
      context.header = await decodeHeader(context.headerBytes);
      return { detail: `block ${context.header.number} of chain ${context.header.chain_id}` };
    });
    return context;
  }

  async function blockIdSteps(report, part, context, options) {
    await report.step("block id = SHA-256(header)", async () => {
      context.blockId = await V.sha256(context.headerBytes);
      const id = V.bytesToHex(context.blockId);
      if (options.expectedBlockId && options.expectedBlockId !== id) {
        throw new Error(`the header hashes to ${id}, the node lists block ${options.expectedBlockId}`);
      }
      return { detail: id };
    });
    await report.step("proposer signature", async () => {
      const signature = V.hexToBytes(
        field(part, "proposer_signature", isHex, "hex"), "block.proposer_signature",
      );
      const proposer = context.header.proposer;
      // The proposer signs the block id, itself SHA-256(header): the header is the preimage.
      await V.verifySignature(proposer.algorithm, proposer.spki, signature, context.headerBytes);
      return { detail: `by ${proposer.algorithm} key ${proposer.fingerprint.slice(0, 16)}…` };
    });
    await report.step("commit certificate", async () => {
      const text = field(part, "certificate", (v) => v === null || isHex(v), "hex or null");
      if (text === null) throw new Error("the node sent no certificate for this block");
      const certificate = decodeCertificate(V.hexToBytes(text, "block.certificate"));
      const header = context.header;
      if (certificate.chain_id !== header.chain_id || certificate.height !== header.number ||
          !V.equalBytes(certificate.block_id, context.blockId)) {
        throw new Error(`the certificate is for chain ${certificate.chain_id} height ` +
          `${certificate.height}, not this block`);
      }
      context.certificate = certificate;
      return { detail: `${certificate.votes.length} vote(s), round ${certificate.round}` };
    });
    await report.step("certificate signatures (quorum)", async () => {
      return certificateVotes(context.header, context.certificate, context.blockId,
        options.membership);
    });
  }

  /** Every vote by a member, every signature valid, at least a quorum of the membership. */
  async function certificateVotes(header, certificate, blockId, membership) {
    if (!membership || membership.members.length === 0) {
      throw new Error("no membership known to check the votes against");
    }
    const byFingerprint = new Map(membership.members.map((m) => [m.fingerprint, m]));
    const preimage = votePreimage(certificate.chain_id, certificate.height, certificate.round,
      blockId);
    const names = [];
    for (const vote of certificate.votes) {
      const member = byFingerprint.get(vote.fingerprint);
      if (member === undefined) {
        throw new Error(`vote by ${vote.fingerprint.slice(0, 16)}…, not a member ` +
          `(${membership.source})`);
      }
      try {
        await V.verifySignature(member.algorithm, member.spki, vote.signature, preimage);
      } catch (err) {
        throw new Error(`vote by ${member.name}: ${err.message}`);
      }
      names.push(member.name);
    }
    const needed = quorum(membership.members.length);
    if (names.length < needed) {
      throw new Error(`${names.length} valid vote(s), a quorum of ` +
        `${membership.members.length} members is ${needed}`);
    }
    if (!byFingerprint.has(header.proposer.fingerprint)) {
      throw new Error(`the proposer ${header.proposer.fingerprint.slice(0, 16)}… is not a member`);
    }
    return { detail: `${names.length} of ${membership.members.length} members signed ` +
      `(quorum ${needed}): ${names.join(", ")}; membership: ${membership.source}` };
  }

  async function inclusionSteps(report, proof, context) {
    await report.step("batch leaf", async () => {
      const id = field(proof, "batch_id", (v) => isHex(v) && v.length === 128, "128 hex chars");
      context.leaf = await V.merkleLeafHash(V.hexToBytes(id, "batch_id"));
      return { detail: `leaf hash of batch ${id.slice(0, 16)}…` };
    });
    await report.step("inclusion path → batch_root", async () => {
      const index = field(proof, "index", isUint, "a non-negative integer");
      const size = field(proof, "tree_size", isUint, "a non-negative integer");
      const path = field(proof, "path", (v) => Array.isArray(v) && v.length <= 64, "a list")
        .map((h, i) => {
          if (!isHex(h) || h.length !== 64) throw new Error(`path[${i}] is not 64 hex chars`);
          return V.hexToBytes(h);
        });
      if (size !== context.header.batch_count) {
        throw new Error(`tree_size ${size}, the header has ${context.header.batch_count} batches`);
      }
      const root = await V.rootFromInclusionPath(index, size, context.leaf, path);
      if (!V.equalBytes(root, context.header.batch_root)) {
        throw new Error(`the path leads to ${V.bytesToHex(root).slice(0, 16)}…, the header's ` +
          `batch_root is ${V.bytesToHex(context.header.batch_root).slice(0, 16)}…`);
      }
      return { detail: `batch ${index} of ${size}, ${path.length} hash(es) up to the root` };
    });
  }

  /** {ok, failed_step, steps} for a `batch-inclusion` proof. */
  async function verifyBatchProof(proof, options = {}) {
    const report = new V.Report();
    await report.step("proof document", async () => checkEnvelope(proof, "batch-inclusion"));
    const context = await blockSteps(report, proof && proof.block);
    await inclusionSteps(report, proof, context);
    await blockIdSteps(report, proof && proof.block, context, options);
    return report.result();
  }

  /** {ok, failed_step, steps} for a `transaction-inclusion` proof. */
  async function verifyTransactionProof(proof, options = {}) {
    const report = new V.Report();
    await report.step("proof document", async () => checkEnvelope(proof, "transaction-inclusion"));
    const context = await blockSteps(report, proof && proof.block);
    await report.step("transaction signed and listed in its batch", async () => {
      const batchHeader = V.hexToBytes(field(proof, "batch_header", isHex, "hex"), "batch_header");
      const batch = decodeStringFields(batchHeader, "batch header", BATCH_HEADER_FIELDS);
      const batcher = one(batch, 1);
      V.secp256k1Verify(V.hexToBytes(batcher, "batch signer"),
        V.hexToBytes(proof.batch_id, "batch_id"), await V.sha256(batchHeader));
      const id = field(proof, "transaction_id", (v) => isHex(v) && v.length === 128, "an id");
      const position = field(proof, "transaction_index", isUint, "a non-negative integer");
      if ((batch.get(2) || [])[position] !== id) {
        throw new Error(`the batch header does not list ${id.slice(0, 16)}… at ${position}`);
      }
      const raw = V.hexToBytes(field(proof, "transaction_header", isHex, "hex"), "header");
      const header = decodeStringFields(raw, "transaction header", TRANSACTION_HEADER_FIELDS);
      V.secp256k1Verify(V.hexToBytes(one(header, 10), "signer"), V.hexToBytes(id),
        await V.sha256(raw));
      if (one(header, 1) !== batcher) throw new Error("the transaction names another batcher");
      return { detail: `${one(header, 3)} ${one(header, 4)} transaction ${position}, ` +
        "secp256k1 signatures of transaction and batch checked" };
    });
    await inclusionSteps(report, proof, context);
    await blockIdSteps(report, proof && proof.block, context, options);
    return report.result();
  }

  /** The state-specific steps; returns the proven value (bytes, or null: absent). */
  async function stateSteps(report, proof, context, options) {
    let value;
    await report.step("state path → state_root", async () => {
      const address = field(proof, "address", (v) => isHex(v) && v.length === 70, "an address");
      const nodes = field(proof, "nodes", Array.isArray, "a list").map((n, i) => {
        if (!isHex(n)) throw new Error(`nodes[${i}] is not hex`);
        return V.hexToBytes(n);
      });
      value = await valueFromStatePath(context.header.state_root, address, nodes);
      if (options.expectedAddress && options.expectedAddress !== address) {
        throw new Error(`the proof is for ${address}, not ${options.expectedAddress}`);
      }
      return { detail: `${nodes.length} node(s) from the root to ${address.slice(0, 16)}…` };
    });
    await report.step("value", async () => {
      const claimed = field(proof, "value", (v) => v === null || isHex(v), "hex or null");
      const proven = value === null ? null : V.bytesToHex(value);
      if (claimed !== proven) throw new Error("differs from the value the nodes prove");
      return { detail: proven === null ? "proven absent" : `${value.length} bytes` };
    });
    return value;
  }

  /** {ok, failed_step, steps, value} for a `state` proof (value: bytes, or null if absent). */
  async function verifyStateProof(proof, options = {}) {
    const report = new V.Report();
    await report.step("proof document", async () => checkEnvelope(proof, "state"));
    const context = await blockSteps(report, proof && proof.block);
    const value = await stateSteps(report, proof, context, options);
    await blockIdSteps(report, proof && proof.block, context, options);
    const result = report.result();
    result.value = result.ok ? value : undefined;
    return result;
  }

  /**
   * A `tl_audit` anchor (docs/families.md): the state proof of the record at the key's
   * address, then the checkpoint signature the record carries (§7.3) under the key it names.
   * `options.expectedFingerprint` is the member key the page shows for the row.
   */
  async function verifyAnchorProof(proof, options = {}) {
    const report = new V.Report();
    await report.step("proof document", async () => checkEnvelope(proof, "state"));
    const context = await blockSteps(report, proof && proof.block);
    const value = await stateSteps(report, proof, context, options);
    await report.step("checkpoint signature", async () => {
      if (value === null) throw new Error("no anchor is stored at this address");
      const record = V.decodeCbor(value);
      const spki = record.get("public_key");
      const fingerprint = await V.fingerprint(spki);
      if (record.get("fingerprint") !== fingerprint) {
        throw new Error("the record's fingerprint is not its key's");
      }
      if (options.expectedFingerprint && options.expectedFingerprint !== fingerprint) {
        throw new Error(`the record is key ${fingerprint.slice(0, 16)}…'s, not the row's`);
      }
      const namespace = (await V.sha512Hex("tl_audit")).slice(0, 6);
      const suffix = V.bytesToHex(new Uint8Array(await globalThis.crypto.subtle.digest(
        "SHA-512", V.hexToBytes(fingerprint)))).slice(-64);
      if (proof.address !== namespace + suffix) {
        throw new Error("the record is not at its key's tl_audit address");
      }
      const headHash = record.get("head_hash");
      const preimage = V.concat(encoder.encode("trusted-ledger/audit-checkpoint/v1\n"),
        V.uint(record.get("head_seq"), 8, "head_seq"), headHash);
      await V.verifySignature(record.get("algorithm"), spki, record.get("signature"), preimage);
      return { detail: `trail head ${record.get("head_seq")} (${V.bytesToHex(headHash).slice(0, 16)}…) ` +
        `signed by ${record.get("algorithm")} key ${fingerprint.slice(0, 16)}…` };
    });
    await blockIdSteps(report, proof && proof.block, context, options);
    return report.result();
  }

  /** {ok, failed_step, steps} for a block as /blocks/{id} renders it (docs/api.md). */
  async function verifyRenderedBlock(block, membership) {
    const report = new V.Report();
    const context = {};
    await report.step("batch_root over the batch ids", async () => {
      const ids = block.header.batch_ids.map((id) => V.hexToBytes(id, "batch id"));
      const root = await V.merkleRoot(ids);
      if (V.bytesToHex(root) !== block.header.batch_root) {
        throw new Error(`the batch ids hash to ${V.bytesToHex(root).slice(0, 16)}…`);
      }
      if (ids.length !== block.header.batch_count) throw new Error("batch_count differs");
      return { detail: `${ids.length} batch id(s)` };
    });
    await report.step("block id = SHA-256(header)", async () => {
      context.headerBytes = headerBytesFromJson(block.header);
      context.header = await decodeHeader(context.headerBytes);
      context.blockId = await V.sha256(context.headerBytes);
      if (V.bytesToHex(context.blockId) !== block.header_signature) {
        throw new Error(`the header hashes to ${V.bytesToHex(context.blockId)}`);
      }
      return { detail: block.header_signature };
    });
    await report.step("proposer signature", async () => {
      const proposer = context.header.proposer;
      await V.verifySignature(proposer.algorithm, proposer.spki,
        V.hexToBytes(block.proposer_signature), context.headerBytes);
      return { detail: `by ${proposer.fingerprint.slice(0, 16)}…` };
    });
    await report.step("certificate signatures (quorum)", async () => {
      const rendered = block.certificate;
      if (rendered.block_id !== block.header_signature || rendered.height !== block.header.block_num) {
        throw new Error("the certificate is for another block");
      }
      const certificate = {
        chain_id: rendered.chain_id,
        height: rendered.height,
        round: rendered.round,
        votes: rendered.votes.map((v) => ({
          fingerprint: v.signer_fingerprint, signature: V.hexToBytes(v.signature),
        })),
      };
      return certificateVotes(context.header, certificate, context.blockId, membership);
    });
    return report.result();
  }

  globalThis.TLProofs = Object.freeze({
    decodeCertificate,
    decodeHeader,
    decodeStateNode,
    headerBytesFromJson,
    quorum,
    valueFromStatePath,
    verifyAnchorProof,
    verifyBatchProof,
    verifyRenderedBlock,
    verifyStateProof,
    verifyTransactionProof,
    votePreimage,
  });
})();
