// Trusted Ledger explorer: proof verification in the browser (docs/explorer.md).
//
// Everything here is written from docs/formats.md alone and needs nothing but WebCrypto:
// SHA-256 for Merkle paths, block ids and state nodes; ECDSA P-256 (and Ed25519 where the
// browser has it) for the proposer's signature and the commit certificate's votes. A check
// that fails names its step, so a person sees *where* a proof broke, not just that it did.
"use strict";

(function () {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  const encoder = new TextEncoder();

  // --- bytes -----------------------------------------------------------------------------

  /** Lowercase even-length hex to bytes; anything else throws naming `what`. */
  function hexToBytes(hex, what) {
    if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) {
      throw new Error(`${what || "value"} is not lowercase hex of even length`);
    }
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i += 1) {
      out[i] = parseInt(hex.substr(i * 2, 2), 16);
    }
    return out;
  }

  function bytesToHex(bytes) {
    let out = "";
    for (const b of bytes) out += b.toString(16).padStart(2, "0");
    return out;
  }

  function concat(...parts) {
    const size = parts.reduce((sum, part) => sum + part.length, 0);
    const out = new Uint8Array(size);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  /** Unsigned big-endian integer of `size` bytes; BigInt-safe for u64. */
  function uint(value, size, what) {
    let n = BigInt(value);
    if (n < 0n || n >= 1n << BigInt(8 * size)) {
      throw new Error(`${what} ${value} does not fit ${size} bytes`);
    }
    const out = new Uint8Array(size);
    for (let i = size - 1; i >= 0; i -= 1) {
      out[i] = Number(n & 0xffn);
      n >>= 8n;
    }
    return out;
  }

  function bytesToBigInt(bytes) {
    let n = 0n;
    for (const b of bytes) n = (n << 8n) | BigInt(b);
    return n;
  }

  function base64ToBytes(text) {
    const binary = atob(text);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) out[i] = binary.charCodeAt(i);
    return out;
  }

  // --- digests (docs/formats.md §1, §2) --------------------------------------------------

  async function sha256(bytes) {
    return new Uint8Array(await subtle.digest("SHA-256", bytes));
  }

  async function sha512Hex(text) {
    return bytesToHex(new Uint8Array(await subtle.digest("SHA-512", encoder.encode(text))));
  }

  /** H(u8 len(domain) || domain || data) (§1.1). */
  function taggedPreimage(domain, data) {
    const tag = encoder.encode(domain);
    return concat(Uint8Array.of(tag.length), tag, data);
  }

  async function merkleLeafHash(data) {
    return sha256(concat(Uint8Array.of(0), data));
  }

  async function merkleNodeHash(left, right) {
    return sha256(concat(Uint8Array.of(1), left, right));
  }

  /**
   * The root an RFC 6962 audit path leads to (RFC 9162 §2.1.3.2). Throws when the path has
   * more or fewer elements than the algorithm consumes for (index, treeSize).
   */
  async function rootFromInclusionPath(index, treeSize, leafHash, path) {
    if (!Number.isInteger(index) || !Number.isInteger(treeSize) || index < 0) {
      throw new Error("index and tree_size must be non-negative integers");
    }
    if (index >= treeSize) {
      throw new Error(`index ${index} is not below tree_size ${treeSize}`);
    }
    let fn = index;
    let sn = treeSize - 1;
    let r = leafHash;
    for (let i = 0; i < path.length; i += 1) {
      const p = path[i];
      if (sn === 0) throw new Error(`path has ${path.length} elements, more than the tree needs`);
      if (fn % 2 === 1 || fn === sn) {
        r = await merkleNodeHash(p, r);
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) {
            fn = Math.floor(fn / 2);
            sn = Math.floor(sn / 2);
          }
        }
      } else {
        r = await merkleNodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error(`path has ${path.length} elements, fewer than the tree needs`);
    return r;
  }

  /** MTH over leaves (§2): used to recompute a block's batch root from its batch ids. */
  async function merkleRoot(leaves) {
    if (leaves.length === 0) return sha256(new Uint8Array(0));
    if (leaves.length === 1) return merkleLeafHash(leaves[0]);
    let k = 1;
    while (k * 2 < leaves.length) k *= 2;
    return merkleNodeHash(await merkleRoot(leaves.slice(0, k)), await merkleRoot(leaves.slice(k)));
  }

  // --- signatures (docs/formats.md §4.2, §6.1) -------------------------------------------

  const P256_ORDER = BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");

  /**
   * A 64-byte r||s signature from raw r||s or from DER (SEQUENCE of two INTEGERs), which is
   * what WebCrypto's ECDSA wants. Throws on anything else.
   */
  function signatureToRaw(signature) {
    if (signature.length === 64) return signature;
    if (signature[0] !== 0x30 || signature[1] !== signature.length - 2) {
      throw new Error(`a ${signature.length}-byte signature is neither raw r||s nor DER`);
    }
    let at = 2;
    const parts = [];
    for (let i = 0; i < 2; i += 1) {
      if (signature[at] !== 0x02) throw new Error("DER signature: INTEGER expected");
      const length = signature[at + 1];
      let value = signature.slice(at + 2, at + 2 + length);
      at += 2 + length;
      while (value.length > 32 && value[0] === 0) value = value.slice(1);
      if (value.length > 32) throw new Error("DER signature: integer longer than 32 bytes");
      parts.push(concat(new Uint8Array(32 - value.length), value));
    }
    if (at !== signature.length) throw new Error("DER signature: bytes after the integers");
    return concat(parts[0], parts[1]);
  }

  /**
   * Check `signature` by the SPKI `publicKey` of `algorithm` over the digest SHA-256(`preimage`)
   * (§6.1: the signer signed the 32-byte digest). Throws with a reason when it does not verify.
   */
  async function verifySignature(algorithm, publicKey, signature, preimage) {
    if (algorithm === "ec-p256") {
      const raw = signatureToRaw(signature);
      const s = bytesToBigInt(raw.slice(32));
      if (s > P256_ORDER >> 1n) throw new Error("ECDSA signature with a high S (not accepted)");
      const key = await subtle.importKey(
        "spki", publicKey, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"],
      );
      // WebCrypto hashes its message: SHA-256(preimage) is exactly the signed digest.
      const ok = await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, raw, preimage);
      if (!ok) throw new Error("ECDSA P-256 signature does not verify");
      return;
    }
    if (algorithm === "ed25519") {
      let key;
      try {
        key = await subtle.importKey("spki", publicKey, { name: "Ed25519" }, false, ["verify"]);
      } catch (err) {
        throw new Error(`this browser cannot check Ed25519 signatures (${err.message})`);
      }
      const ok = await subtle.verify({ name: "Ed25519" }, key, signature, await sha256(preimage));
      if (!ok) throw new Error("Ed25519 signature does not verify");
      return;
    }
    if (algorithm === "ec-secp256k1") {
      // An SPKI of an EC key ends with the uncompressed point 04 || x || y.
      const point = publicKey.slice(publicKey.length - 65);
      if (point[0] !== 4) throw new Error("secp256k1 key: uncompressed point expected");
      const y = point.slice(33);
      const compressed = concat(Uint8Array.of(y[31] % 2 === 0 ? 2 : 3), point.slice(1, 33));
      secp256k1Verify(compressed, signatureToRaw(signature), await sha256(preimage));
      return;
    }
    throw new Error(`unknown key algorithm ${algorithm}`);
  }

  async function fingerprint(spki) {
    return bytesToHex(await sha256(spki));
  }

  // secp256k1 ECDSA (SEC 1 §4.1.4), for client signatures: WebCrypto has no secp256k1.
  // Verification only, with public data, so constant time does not matter here.
  const K1_P = (1n << 256n) - (1n << 32n) - 977n;
  const K1_N = BigInt("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
  const K1_G = [
    BigInt("0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"),
    BigInt("0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"),
    1n,
  ];

  function mod(a, m) {
    const r = a % m;
    return r < 0n ? r + m : r;
  }

  function powMod(base, exponent, m) {
    let result = 1n;
    let b = mod(base, m);
    let e = exponent;
    while (e > 0n) {
      if (e & 1n) result = (result * b) % m;
      b = (b * b) % m;
      e >>= 1n;
    }
    return result;
  }

  // Jacobian coordinates [X, Y, Z] (x = X/Z^2, y = Y/Z^3); null is the point at infinity.
  function k1Double(point) {
    if (point === null) return null;
    const [x, y, z] = point;
    if (y === 0n) return null;
    const yy = (y * y) % K1_P;
    const s = (4n * x * yy) % K1_P;
    const m = (3n * x * x) % K1_P;
    const x3 = mod(m * m - 2n * s, K1_P);
    const y3 = mod(m * (s - x3) - 8n * yy * yy, K1_P);
    return [x3, y3, (2n * y * z) % K1_P];
  }

  function k1Add(a, b) {
    if (a === null) return b;
    if (b === null) return a;
    const [x1, y1, z1] = a;
    const [x2, y2, z2] = b;
    const z1z1 = (z1 * z1) % K1_P;
    const z2z2 = (z2 * z2) % K1_P;
    const u1 = (x1 * z2z2) % K1_P;
    const u2 = (x2 * z1z1) % K1_P;
    const s1 = (y1 * z2 * z2z2) % K1_P;
    const s2 = (y2 * z1 * z1z1) % K1_P;
    if (u1 === u2) return s1 === s2 ? k1Double(a) : null;
    const h = mod(u2 - u1, K1_P);
    const r = mod(s2 - s1, K1_P);
    const hh = (h * h) % K1_P;
    const hhh = (h * hh) % K1_P;
    const x3 = mod(r * r - hhh - 2n * u1 * hh, K1_P);
    const y3 = mod(r * (u1 * hh - x3) - s1 * hhh, K1_P);
    return [x3, y3, (h * z1 * z2) % K1_P];
  }

  /** Throws unless `signature` (r||s, low S) by compressed `publicKey` signs `digest`. */
  function secp256k1Verify(publicKey, signature, digest) {
    if (publicKey.length !== 33 || (publicKey[0] !== 2 && publicKey[0] !== 3)) {
      throw new Error("secp256k1 key: 33-byte compressed point expected");
    }
    const r = bytesToBigInt(signature.slice(0, 32));
    const s = bytesToBigInt(signature.slice(32, 64));
    if (r < 1n || r >= K1_N || s < 1n || s >= K1_N) throw new Error("r or s out of range");
    if (s > K1_N >> 1n) throw new Error("secp256k1 signature with a high S (not accepted)");
    const x = bytesToBigInt(publicKey.slice(1));
    if (x >= K1_P) throw new Error("secp256k1 key: x is not a field element");
    const ySquared = mod(x * x * x + 7n, K1_P);
    let y = powMod(ySquared, (K1_P + 1n) / 4n, K1_P);
    if ((y * y) % K1_P !== ySquared) throw new Error("secp256k1 key is not on the curve");
    if (Number(y & 1n) !== publicKey[0] - 2) y = K1_P - y;
    const w = powMod(s, K1_N - 2n, K1_N);
    const u1 = mod(bytesToBigInt(digest) * w, K1_N);
    const u2 = (r * w) % K1_N;
    // u1·G + u2·Q by one double-and-add pass over both scalars (Shamir's trick).
    const q = [x, y, 1n];
    const both = k1Add(K1_G, q);
    let sum = null;
    for (let bit = 255n; bit >= 0n; bit -= 1n) {
      sum = k1Double(sum);
      const a = (u1 >> bit) & 1n;
      const b = (u2 >> bit) & 1n;
      if (a && b) sum = k1Add(sum, both);
      else if (a) sum = k1Add(sum, K1_G);
      else if (b) sum = k1Add(sum, q);
    }
    if (sum === null) throw new Error("secp256k1 signature does not verify");
    const zInverse = powMod(sum[2], K1_P - 2n, K1_P);
    const affineX = (sum[0] * zInverse * zInverse) % K1_P;
    if (affineX % K1_N !== r) throw new Error("secp256k1 signature does not verify");
  }

  // --- CBOR (RFC 8949), the subset state records use -------------------------------------

  function decodeCbor(bytes) {
    let at = 0;
    const text = new TextDecoder("utf-8", { fatal: true });
    function length(info) {
      if (info < 24) return info;
      const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
      if (size === undefined) throw new Error(`CBOR: unsupported length encoding ${info}`);
      const n = bytesToBigInt(bytes.slice(at, at + size));
      at += size;
      return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
    }
    function item() {
      if (at >= bytes.length) throw new Error("CBOR: truncated");
      const initial = bytes[at];
      at += 1;
      const major = initial >> 5;
      const info = initial & 31;
      if (major === 7) {
        const simple = { 20: false, 21: true, 22: null };
        if (info in simple) return simple[info];
        throw new Error(`CBOR: unsupported simple value ${info}`);
      }
      const n = length(info);
      switch (major) {
        case 0:
          return n;
        case 1:
          return typeof n === "bigint" ? -1n - n : -1 - n;
        case 2:
          at += n;
          return bytes.slice(at - n, at);
        case 3:
          at += n;
          return text.decode(bytes.slice(at - n, at));
        case 4:
          return Array.from({ length: n }, () => item());
        case 5: {
          const map = new Map();
          for (let i = 0; i < n; i += 1) map.set(item(), item());
          return map;
        }
        default:
          throw new Error(`CBOR: unsupported major type ${major}`);
      }
    }
    const value = item();
    if (at !== bytes.length) throw new Error("CBOR: bytes after the item");
    return value;
  }

  // --- reports ---------------------------------------------------------------------------

  /**
   * Runs named steps in order; the first that throws fails the report and the rest are
   * recorded as not run. `report.result()` is {ok, failed_step, steps: [{step, ok, detail}]}.
   */
  class Report {
    constructor() {
      this.steps = [];
      this.failed = null;
    }

    async step(name, check) {
      if (this.failed !== null) {
        this.steps.push({ step: name, ok: null, detail: "not run: an earlier step failed" });
        return undefined;
      }
      try {
        const value = await check();
        const detail = value && typeof value === "object" && "detail" in value ? value.detail : "";
        this.steps.push({ step: name, ok: true, detail: String(detail) });
        return value;
      } catch (err) {
        this.failed = name;
        this.steps.push({ step: name, ok: false, detail: err && err.message ? err.message : String(err) });
        return undefined;
      }
    }

    result() {
      return { ok: this.failed === null, failed_step: this.failed, steps: this.steps };
    }
  }

  globalThis.TLVerify = Object.freeze({
    Report,
    base64ToBytes,
    bytesToBigInt,
    bytesToHex,
    concat,
    decodeCbor,
    equalBytes,
    fingerprint,
    hexToBytes,
    merkleLeafHash,
    merkleRoot,
    rootFromInclusionPath,
    secp256k1Verify,
    sha256,
    sha512Hex,
    signatureToRaw,
    taggedPreimage,
    uint,
    verifySignature,
  });
})();
