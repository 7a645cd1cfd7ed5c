// Trusted Ledger explorer: DOM and API helpers shared by the page (docs/explorer.md).
//
// Every value from the API goes into the page through textContent or setAttribute (el,
// setText), never as markup: a transaction carrying HTML shows as text.
"use strict";

(function () {
  const V = globalThis.TLVerify;

  // --- DOM helpers: text only ------------------------------------------------------------

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(id, text) {
    document.getElementById(id).textContent = String(text);
  }

  function replaceChildren(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  }

  function short(hex, chars = 16) {
    return typeof hex === "string" && hex.length > chars ? `${hex.slice(0, chars)}…` : String(hex);
  }

  function code(hex, chars) {
    return el("code", { title: hex }, chars ? short(hex, chars) : hex);
  }

  function link(hash, text, attributes = {}) {
    return el("a", { href: `#${hash}`, ...attributes }, text);
  }

  function utc(ms) {
    return new Date(Number(ms)).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
  }

  function definitions(rows) {
    return el("dl", { class: "fields" },
      rows.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value))));
  }

  function table(caption, headings, rows, attributes = {}) {
    return el("table", { class: "grid", ...attributes },
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));
  }

  // --- the API ---------------------------------------------------------------------------

  /** {status, body, routeMissing}: routeMissing when the node has no such route at all. */
  async function api(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    const message = body && body.error ? body.error.message : "";
    return {
      status: response.status,
      body,
      message,
      routeMissing: response.status === 404 && message.startsWith("no route"),
    };
  }

  /** {status, text, message, routeMissing}: the body as text, for verifiers that must read
   * the JSON themselves (integers exact: /explorer/audit.js). */
  async function apiText(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    const text = await response.text();
    let message = "";
    if (response.status !== 200) {
      try {
        const body = JSON.parse(text);
        message = body && body.error ? body.error.message : "";
      } catch (err) {
        message = text.slice(0, 200);
      }
    }
    return {
      status: response.status,
      text,
      message,
      routeMissing: response.status === 404 && message.startsWith("no route"),
    };
  }

  // --- verification results --------------------------------------------------------------

  function reportView(result, what) {
    const outcome = result.ok ? "verified" : "failed";
    const summary = result.ok
      ? `${what}: verified in this browser, every step passed.`
      : `${what}: NOT verified. Failed step: ${result.failed_step}.`;
    return el("div", { class: `report ${outcome}`, "data-outcome": outcome,
      "data-failed-step": result.failed_step || "" },
      el("p", { class: "verdict", role: "status" }, summary),
      result.note ? el("p", { class: "note" }, result.note) : null,
      el("ol", { class: "steps" }, result.steps.map((s) => el("li",
        { class: s.ok === true ? "pass" : s.ok === false ? "fail" : "skip" },
        el("span", { class: "mark", "aria-hidden": "true" }, s.ok === true ? "✓" : s.ok === false ? "✗" : "–"),
        el("strong", {}, s.step), s.detail ? `: ${s.detail}` : ""))));
  }

  function notAvailable(what, answer) {
    return el("div", { class: "report unavailable", "data-outcome": "unavailable" },
      el("p", { class: "verdict", role: "status" },
        `${what}: not available on this node (HTTP ${answer.status}: ${answer.message}).`));
  }

  /** A "Verify" button that fetches `proofPath` and checks it with `verifier`. */
  function verifyButton(label, proofPath, verifier, optionsFor, what, resultBox) {
    const result = resultBox || el("div", { class: "verify-result", "aria-live": "polite" });
    const button = el("button", { type: "button", class: "verify" }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      replaceChildren(result, el("p", { class: "hint" }, "fetching the proof and checking it…"));
      try {
        const answer = await api(proofPath);
        if (answer.status !== 200) {
          replaceChildren(result, answer.status === 404 && answer.routeMissing
            ? notAvailable(what, answer)
            : el("div", { class: "report failed", "data-outcome": "failed", "data-failed-step": "fetch" },
              el("p", { class: "verdict" }, `${what}: the node did not send a proof ` +
                `(HTTP ${answer.status}: ${answer.message}).`)));
          return;
        }
        const proof = answer.body.data || answer.body;
        const options = await optionsFor(proof);
        replaceChildren(result, reportView(await verifier(proof, options), what));
      } catch (err) {
        replaceChildren(result, reportView({ ok: false, failed_step: "verifier",
          steps: [{ step: "verifier", ok: false, detail: err.message }] }, what));
      } finally {
        button.disabled = false;
      }
    });
    return resultBox ? button : el("div", { class: "verify-box" }, button, result);
  }

  /** Options for a proof: the membership the proof's block height is decided by. */
  // --- small renderings -----------------------------------------------------------------

  function showError(detail, text) {
    replaceChildren(detail, el("p", { class: "error", role: "alert" }, text));
  }

  function payloadText(base64) {
    const bytes = V.base64ToBytes(base64);
    try {
      return describe(V.decodeCbor(bytes));
    } catch (err) {
      return V.bytesToHex(bytes);
    }
  }

  function describe(value) {
    if (value instanceof Map) {
      return `{${[...value].map(([k, v]) => `${describe(k)}: ${describe(v)}`).join(", ")}}`;
    }
    if (Array.isArray(value)) return `[${value.map(describe).join(", ")}]`;
    if (value instanceof Uint8Array) return `h'${V.bytesToHex(value)}'`;
    return JSON.stringify(typeof value === "bigint" ? value.toString() : value);
  }

  globalThis.TLUi = Object.freeze({
    api,
    apiText,
    code,
    definitions,
    el,
    link,
    notAvailable,
    payloadText,
    replaceChildren,
    reportView,
    setText,
    short,
    showError,
    table,
    utc,
    verifyButton,
  });
})();
