// Trusted Ledger explorer: key-usage trail consistency proofs (`audit-consistency`), checked
// in the browser.
//
// Written from docs/formats.md alone: §7.1 canonical JSON, §7.2 record hashes, §7.3
// checkpoints and their signed digest D, §8.5 the proof document and its checks. A record's
// hash covers its canonical JSON, so the JSON is parsed here by our own strict parser, not by
// JSON.parse: JSON.parse would round integers above 2^53 and read `1.0` as `1`, and then a
// hash could recompute over a value the node never wrote. Integers are kept exactly
// (BigInt); a number with a fraction or an exponent is refused (records hold none, §7.1).
"use strict";

(function () {
  const V = globalThis.TLVerify;
  const encoder = new TextEncoder();
  const PROOF_TYPE = "audit-consistency";
  const PROOF_FIELDS = ["version", "type", "from", "to", "records"];
  const CHECKPOINT_FIELDS = ["kind", "seq", "prev", "time_us", "head_seq", "head", "key",
    "algorithm", "public_key", "signature", "hash"];
  const RECORDS_MAX = 100000; // §8 bounds
  const DEPTH_MAX = 64; // nesting a proof may have; records nest two levels
  const RECORD_DOMAIN = "trusted-ledger/audit-record/v1\n";
  const CHECKPOINT_DOMAIN = "trusted-ledger/audit-checkpoint/v1\n";
  const U64_LIMIT = 1n << 64n;
  const HEX64 = /^[0-9a-f]{64}$/;

  // --- strict JSON (RFC 8259), integers exact ----------------------------------------------

  /**
   * Parse JSON text into plain values: objects (null prototype, so "__proto__" is just a
   * key), arrays, strings, BigInt integers, booleans, null. A repeated key keeps its last
   * value (as Python's json.loads does). Throws naming the offset of what is not JSON.
   */
  function parseJson(text) {
    let at = 0;
    const fail = (what) => {
      throw new Error(`not JSON at offset ${at}: ${what}`);
    };
    const space = () => {
      while (at < text.length && " \t\n\r".includes(text[at])) at += 1;
    };
    function literal(word, value) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return value;
      }
      return fail(`unexpected ${JSON.stringify(text.slice(at, at + 8))}`);
    }
    function number() {
      const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(at, at + 4096));
      if (match === null) fail("a malformed number");
      if (match[2] !== undefined || match[3] !== undefined) {
        fail(`the number ${match[0]} has a fraction or exponent (records hold integers only, ` +
          "docs/formats.md §7.1)");
      }
      at += match[0].length;
      return BigInt(match[0]);
    }
    const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
    const plainRun = /[^"\\\u0000-\u001f]*/y; // characters that stand for themselves
    function string() {
      at += 1; // the opening quote
      let out = "";
      for (;;) {
        plainRun.lastIndex = at;
        plainRun.exec(text);
        out += text.slice(at, plainRun.lastIndex);
        at = plainRun.lastIndex;
        if (at >= text.length) fail("an unterminated string");
        const c = text[at];
        if (c === '"') {
          at += 1;
          return out;
        }
        if (c < " ") fail("a control character inside a string (must be escaped)");
        const e = text[at + 1];
        if (e in simple) {
          out += simple[e];
          at += 2;
        } else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(at + 2, at + 6))) {
          out += String.fromCharCode(parseInt(text.slice(at + 2, at + 6), 16));
          at += 6;
        } else {
          fail("a bad escape in a string");
        }
      }
    }
    function value(depth) {
      if (depth > DEPTH_MAX) fail(`nesting deeper than ${DEPTH_MAX}`);
      space();
      const c = text[at];
      if (c === "{") {
        at += 1;
        const object = Object.create(null);
        space();
        if (text[at] === "}") {
          at += 1;
          return object;
        }
        for (;;) {
          space();
          if (text[at] !== '"') fail("an object key must be a string");
          const key = string();
          space();
          if (text[at] !== ":") fail("':' expected");
          at += 1;
          object[key] = value(depth + 1);
          space();
          if (text[at] === ",") at += 1;
          else if (text[at] === "}") {
            at += 1;
            return object;
          } else fail("',' or '}' expected");
        }
      }
      if (c === "[") {
        at += 1;
        const array = [];
        space();
        if (text[at] === "]") {
          at += 1;
          return array;
        }
        for (;;) {
          array.push(value(depth + 1));
          space();
          if (text[at] === ",") at += 1;
          else if (text[at] === "]") {
            at += 1;
            return array;
          } else fail("',' or ']' expected");
        }
      }
      if (c === '"') return string();
      if (c === "-" || (c >= "0" && c <= "9")) return number();
      if (c === "t") return literal("true", true);
      if (c === "f") return literal("false", false);
      if (c === "n") return literal("null", null);
      return fail(c === undefined ? "the text ends early" : `unexpected ${JSON.stringify(c)}`);
    }
    if (typeof text !== "string") throw new Error("JSON text must be a string");
    const result = value(0);
    space();
    if (at !== text.length) fail("text after the value");
    return result;
  }

  /** A value JSON.parse made, in parseJson's form (integers as BigInt). Integers above 2^53
   * are already rounded by then: give the text to verifyAuditProof to have them exact. */
  function fromParsed(value) {
    if (typeof value === "number") {
      if (!Number.isInteger(value)) throw new Error(`the number ${value} is not an integer`);
      return BigInt(value);
    }
    if (Array.isArray(value)) return value.map(fromParsed);
    if (value !== null && typeof value === "object") {
      const object = Object.create(null);
      for (const key of Object.keys(value)) object[key] = fromParsed(value[key]);
      return object;
    }
    return value;
  }

  // --- canonical JSON (§7.1) -------------------------------------------------------------

  /** Python's json.dumps(…, ensure_ascii=True) of a string, UTF-16 unit by unit. */
  function canonicalString(text) {
    const named = { 0x22: '\\"', 0x5c: "\\\\", 0x08: "\\b", 0x0c: "\\f", 0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t" };
    let out = '"';
    for (let i = 0; i < text.length; i += 1) {
      const unit = text.charCodeAt(i);
      if (unit in named) out += named[unit];
      else if (unit >= 0x20 && unit <= 0x7e) out += text[i];
      else out += `\\u${unit.toString(16).padStart(4, "0")}`;
    }
    return `${out}"`;
  }

  /** Order of Python's sorted() on str: by code point (not by UTF-16 unit). */
  function byCodePoint(a, b) {
    const x = [...a];
    const y = [...b];
    for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
      const d = x[i].codePointAt(0) - y[i].codePointAt(0);
      if (d !== 0) return d;
    }
    return x.length - y.length;
  }

  /** The canonical JSON text of a value (§7.1): sorted keys, no whitespace, ASCII only. */
  function canonicalJson(value) {
    if (value === null) return "null";
    if (value === true) return "true";
    if (value === false) return "false";
    if (typeof value === "bigint") return value.toString();
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) throw new Error(`${value} is not an exact integer`);
      return BigInt(value).toString();
    }
    if (typeof value === "string") return canonicalString(value);
    if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
    if (typeof value === "object") {
      const keys = Object.keys(value).sort(byCodePoint);
      return `{${keys.map((k) => `${canonicalString(k)}:${canonicalJson(value[k])}`).join(",")}}`;
    }
    throw new Error(`${typeof value} has no JSON form`);
  }

  /** hex(SHA-256("trusted-ledger/audit-record/v1\n" || C)), C = the record without `hash` (§7.2). */
  async function recordHash(record) {
    const body = Object.create(null);
    for (const key of Object.keys(record)) if (key !== "hash") body[key] = record[key];
    return V.bytesToHex(await V.sha256(encoder.encode(RECORD_DOMAIN + canonicalJson(body))));
  }

  /** The bytes whose SHA-256 is a checkpoint's D (§7.3). */
  function checkpointPreimage(headSeq, headHex) {
    if (headSeq >= U64_LIMIT) throw new Error(`head_seq ${headSeq} does not fit u64`);
    return V.concat(encoder.encode(CHECKPOINT_DOMAIN), V.uint(headSeq, 8, "head_seq"),
      V.hexToBytes(headHex, "head"));
  }

  // --- checks ----------------------------------------------------------------------------

  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const isUint = (v) => typeof v === "bigint" && v >= 0n;
  const isHex = (v) => typeof v === "string" && /^([0-9a-f]{2})*$/.test(v);

  function exactFields(object, names, where) {
    const present = Object.keys(object);
    const missing = names.filter((n) => !present.includes(n));
    const unknown = present.filter((n) => !names.includes(n));
    if (missing.length || unknown.length) {
      throw new Error(`${where}: ` + [missing.length ? `missing ${missing.join(", ")}` : "",
        unknown.length ? `unknown ${unknown.join(", ")}` : ""].filter(Boolean).join("; "));
    }
  }

  // Canonical SubjectPublicKeyInfo of each algorithm (§6.1): fixed DER prefix, fixed length.
  const SPKI_FORMS = [
    { algorithm: "ec-p256", prefix: "3059301306072a8648ce3d020106082a8648ce3d030107034200", bytes: 91 },
    { algorithm: "ec-secp256k1", prefix: "3056301006072a8648ce3d020106052b8104000a034200", bytes: 88 },
    { algorithm: "ed25519", prefix: "302a300506032b6570032100", bytes: 44 },
  ];
  const K1_P = (1n << 256n) - (1n << 32n) - 977n;

  /** The algorithm of an SPKI (hex); throws unless it is one of §6.1's canonical forms. */
  function spkiAlgorithm(hex, where) {
    const form = SPKI_FORMS.find((f) => hex.startsWith(f.prefix) && hex.length === 2 * f.bytes);
    if (form === undefined) {
      throw new Error(`${where}.public_key is not a P-256, secp256k1 or Ed25519 SubjectPublicKeyInfo`);
    }
    if (form.algorithm === "ec-secp256k1") {
      // WebCrypto has no secp256k1: check the point is on the curve ourselves.
      const point = V.hexToBytes(hex.slice(form.prefix.length));
      const x = V.bytesToBigInt(point.slice(1, 33));
      const y = V.bytesToBigInt(point.slice(33));
      if (point[0] !== 4 || x >= K1_P || y >= K1_P || (y * y - x * x * x - 7n) % K1_P !== 0n) {
        throw new Error(`${where}.public_key is not a point on secp256k1`);
      }
    }
    return form.algorithm;
  }

  /** A checkpoint record's form and hash (§7.2, §7.3); the signature is checked later. */
  async function checkpointForm(value, where) {
    if (!isObject(value)) throw new Error(`${where} is not a JSON object`);
    exactFields(value, CHECKPOINT_FIELDS, where);
    if (value.kind !== "checkpoint") throw new Error(`${where}.kind is not "checkpoint"`);
    for (const name of ["seq", "head_seq", "time_us"]) {
      if (!isUint(value[name])) throw new Error(`${where}.${name} is not a non-negative integer`);
    }
    if (value.head_seq !== value.seq - 2n) {
      throw new Error(`${where}.head_seq ${value.head_seq} is not seq − 2 (${value.seq - 2n})`);
    }
    for (const name of ["head", "hash", "prev", "key"]) {
      if (typeof value[name] !== "string" || !HEX64.test(value[name])) {
        throw new Error(`${where}.${name} is not 64 lowercase hex characters`);
      }
    }
    for (const name of ["public_key", "signature", "algorithm"]) {
      if (name === "algorithm" ? typeof value[name] !== "string" : !isHex(value[name])) {
        throw new Error(`${where}.${name} is not ${name === "algorithm" ? "a string" : "lowercase hex"}`);
      }
    }
    const hash = await recordHash(value);
    if (hash !== value.hash) {
      throw new Error(`${where}.hash does not recompute (the record hashes to ` +
        `${hash.slice(0, 16)}…): the checkpoint was edited`);
    }
    return { detail: `record ${value.seq}, trail head ${value.head_seq} ` +
      `(${value.head.slice(0, 16)}…), hash recomputes` };
  }

  /**
   * The key both checkpoints must be signed by. `options.trustedKey` ({hex, name?}): that
   * key and no other. Else `options.membership` ({members: [{name, hex, fingerprint}]}):
   * the member whose key `from` names, if any. Else, or when `from`'s key is no member's:
   * the key inside the proof, which the result says (`key_from_proof`).
   */
  async function signingKey(from, to, options) {
    const where = [["from", from], ["to", to]];
    for (const [name, record] of where) {
      const algorithm = spkiAlgorithm(record.public_key, name);
      if (record.algorithm !== algorithm) {
        throw new Error(`${name}.algorithm is ${JSON.stringify(record.algorithm)}, the key is ${algorithm}`);
      }
      const fingerprint = await V.fingerprint(V.hexToBytes(record.public_key));
      if (record.key !== fingerprint) {
        throw new Error(`${name}.key is not the fingerprint of ${name}.public_key (${fingerprint.slice(0, 16)}…)`);
      }
    }
    let key;
    if (options.trustedKey) {
      const hex = options.trustedKey.hex;
      key = { hex, fingerprint: await V.fingerprint(V.hexToBytes(hex)),
        name: options.trustedKey.name || "the trusted key", fromProof: false, member: false };
    } else {
      const members = options.membership ? options.membership.members : [];
      const member = members.find((m) => m.hex === from.public_key);
      key = member
        ? { hex: member.hex, fingerprint: member.fingerprint, name: member.name, fromProof: false,
          member: true }
        : { hex: from.public_key, fingerprint: from.key, name: null, fromProof: true, member: false };
    }
    for (const [name, record] of where) {
      if (record.public_key !== key.hex) {
        throw new Error(`${name} is signed by key ${record.key.slice(0, 16)}…, not by ` +
          `${key.fromProof ? "from's key" : key.name} ${key.fingerprint.slice(0, 16)}…`);
      }
    }
    key.algorithm = from.algorithm;
    return key;
  }

  function keyDetail(key, options) {
    if (key.member) {
      return `${key.algorithm} key ${key.fingerprint}: the member key of ${key.name} ` +
        `(membership: ${options.membership.source})`;
    }
    if (!key.fromProof) return `${key.algorithm} key ${key.fingerprint}: ${key.name}`;
    const known = options.membership ? ` (${options.membership.source})` : "";
    return `${key.algorithm} key ${key.fingerprint} taken from the proof: NOT a known member ` +
      `key${known}, so the proof is checked against itself only`;
  }

  async function signatureOf(record, key, name) {
    const signature = V.hexToBytes(record.signature, `${name}.signature`);
    if (signature.length !== 64) throw new Error(`${name}.signature is ${signature.length} bytes, not 64`);
    try {
      await V.verifySignature(key.algorithm, V.hexToBytes(key.hex), signature,
        checkpointPreimage(record.head_seq, record.head));
    } catch (err) {
      throw new Error(`${name}: ${err.message}`);
    }
  }

  async function checkpointUse(record, from, index) {
    if (!isObject(record)) throw new Error(`records[${index}] is not a JSON object`);
    const digest = V.bytesToHex(await V.sha256(checkpointPreimage(from.head_seq, from.head)));
    const found = [record.kind, record.purpose, record.digest, record.result];
    const wanted = ["use", "checkpoint", digest, "ok"];
    if (found.some((v, i) => v !== wanted[i])) {
      throw new Error(`records[${index}] (record ${from.seq - 1n}) is not the use record of ` +
        `from's signature (kind use, purpose checkpoint, digest D = ${digest.slice(0, 16)}…, result ok)`);
    }
  }

  /** Walk the records from `from.head`; returns the last hash. */
  async function rechain(records, from) {
    let head = from.head;
    for (let i = 0; i < records.length; i += 1) {
      const record = records[i];
      const seq = from.head_seq + 1n + BigInt(i);
      if (!isObject(record)) throw new Error(`records[${i}] is not a JSON object`);
      if (record.seq !== seq) {
        throw new Error(`records[${i}].seq is ${canonicalJson(record.seq ?? null)}, expected ${seq}`);
      }
      if (record.prev !== head) throw new Error(`records[${i}].prev is not record ${seq - 1n}'s hash`);
      const hash = await recordHash(record);
      if (record.hash !== hash) {
        throw new Error(`records[${i}].hash does not recompute (record ${seq} was edited)`);
      }
      head = hash;
    }
    return head;
  }

  /**
   * {ok, failed_step, steps, facts, note} for an `audit-consistency` proof (§8.5). `proof` is
   * the document's JSON text (exact; with `options.envelope`, the API's whole answer) or a
   * value JSON.parse made. Options: `trustedKey`
   * ({hex, name}), or `membership` (the page's), and `anchor` ({fingerprint, head_seq,
   * head_hash, signature}: `from` must be the checkpoint the ledger anchored).
   */
  async function verifyAuditProof(proof, options = {}) {
    const report = new V.Report();
    const c = {};
    await report.step("proof document", async () => {
      c.doc = typeof proof === "string" ? parseJson(proof) : fromParsed(proof);
      if (options.envelope) {
        // The API's answer {"data": <proof>, "link": …} (docs/api.md), read as text.
        if (!isObject(c.doc) || !isObject(c.doc.data)) throw new Error("the answer has no data object");
        c.doc = c.doc.data;
      }
      if (!isObject(c.doc)) throw new Error("a proof is a JSON object");
      if (c.doc.version !== 1n) throw new Error(`version ${canonicalJson(c.doc.version ?? null)} is not 1`);
      if (c.doc.type !== PROOF_TYPE) throw new Error(`type ${JSON.stringify(c.doc.type)}, expected ${PROOF_TYPE}`);
      exactFields(c.doc, PROOF_FIELDS, "proof");
      if (!Array.isArray(c.doc.records) || c.doc.records.length > RECORDS_MAX) {
        throw new Error(`records is not a list of at most ${RECORDS_MAX} records`);
      }
      return { detail: `${PROOF_TYPE}, version 1, ${c.doc.records.length} record(s)` };
    });
    const doc = c.doc || {};
    await report.step("from checkpoint", () => checkpointForm(doc.from, "from"));
    await report.step("to checkpoint", () => checkpointForm(doc.to, "to"));
    await report.step("signing key", async () => {
      c.key = await signingKey(doc.from, doc.to, options);
      return { detail: keyDetail(c.key, options) };
    });
    await report.step("checkpoint signatures", async () => {
      await signatureOf(doc.from, c.key, "from");
      await signatureOf(doc.to, c.key, "to");
      return { detail: `from (head ${doc.from.head_seq}) and to (head ${doc.to.head_seq}) ` +
        `signed over D = SHA-256("${CHECKPOINT_DOMAIN.trim()}\\n" || u64 head_seq || head)` };
    });
    await report.step("checkpoint order", async () => {
      const { from, to } = doc;
      if (to.seq < from.seq) throw new Error(`to (record ${to.seq}) comes before from (record ${from.seq})`);
      if (to.seq === from.seq && canonicalJson(to) !== canonicalJson(from)) {
        throw new Error(`from and to are two different checkpoints numbered ${to.seq}`);
      }
      if (to.seq > from.seq && to.head_seq < from.seq) {
        throw new Error(`to's head ${to.head_seq} precedes from (record ${from.seq})`);
      }
      return { detail: to.seq === from.seq ? `one checkpoint, record ${to.seq}`
        : `record ${from.seq} → record ${to.seq}` };
    });
    await report.step("record count", async () => {
      const wanted = doc.to.head_seq - doc.from.head_seq;
      if (BigInt(doc.records.length) !== wanted) {
        throw new Error(`${doc.records.length} record(s); the heads ${doc.from.head_seq} and ` +
          `${doc.to.head_seq} need ${wanted}`);
      }
      return { detail: wanted === 0n ? "none needed (from = to)"
        : `records ${doc.from.head_seq + 1n} … ${doc.to.head_seq}` };
    });
    await report.step("record chain", async () => {
      c.head = await rechain(doc.records, doc.from);
      return { detail: `${doc.records.length} record(s) re-hashed, each prev the hash before it` };
    });
    await report.step("from checkpoint in the trail", async () => {
      if (doc.records.length === 0) return { detail: "no records: from = to" };
      // records[0] is record from.head_seq + 1 = from.seq − 1; records[1] is from.seq.
      await checkpointUse(doc.records[0], doc.from, 0);
      if (canonicalJson(doc.records[1]) !== canonicalJson(doc.from)) {
        throw new Error(`records[1] (record ${doc.from.seq}) differs from the from checkpoint`);
      }
      return { detail: `record ${doc.from.seq} is from, record ${doc.from.seq - 1n} the audited ` +
        "use of its signature" };
    });
    await report.step("final head = to.head", async () => {
      if (c.head !== doc.to.head) {
        throw new Error(`the records end at ${c.head.slice(0, 16)}…, to's head is ${doc.to.head.slice(0, 16)}…`);
      }
      return { detail: `record ${doc.to.head_seq}: ${doc.to.head}` };
    });
    if (options.anchor) {
      await report.step("anchored in the ledger", async () => anchorCheck(doc.from, options.anchor));
    }
    const result = report.result();
    if (result.ok) {
      result.facts = {
        from_seq: Number(doc.from.seq), from_head_seq: Number(doc.from.head_seq),
        to_seq: Number(doc.to.seq), to_head_seq: Number(doc.to.head_seq),
        records: doc.records.length, key_fingerprint: c.key.fingerprint,
        key_member: c.key.member ? c.key.name : null, key_from_proof: c.key.fromProof,
      };
      if (c.key.fromProof) {
        result.note = `Checked under the key in the proof (${c.key.fingerprint.slice(0, 16)}…), ` +
          "which is NOT a known member key: not verified against a member.";
      }
    }
    return result;
  }

  /** `from` is the checkpoint the ledger's tl_audit record anchors (docs/families.md). */
  function anchorCheck(from, anchor) {
    const same = from.key === anchor.fingerprint && from.head_seq === BigInt(anchor.head_seq) &&
      from.head === anchor.head_hash && from.signature === anchor.signature;
    if (!same) {
      throw new Error(`from (key ${from.key.slice(0, 12)}…, head ${from.head_seq}) is not the ` +
        `anchored checkpoint (key ${anchor.fingerprint.slice(0, 12)}…, head ${anchor.head_seq})`);
    }
    return { detail: `from is the checkpoint anchored on chain for key ${anchor.fingerprint.slice(0, 16)}… ` +
      `(head ${anchor.head_seq})` };
  }

  globalThis.TLAudit = Object.freeze({
    canonicalJson,
    checkpointPreimage,
    fromParsed,
    parseJson,
    recordHash,
    verifyAuditProof,
  });
})();
