/**
 * Where the T services send their requests: the node the script was loaded from (its
 * Tianditu-compatible web services, README "Place names and addresses"), with the key of the
 * `/api?v=4.0&tk=KEY` URL, as Tianditu's JS API sends its own to api.tianditu.gov.cn.
 */

const config = { base: "", key: "" };

/** Sets the node's base URL (no trailing slash) and the key; index.js calls it once. */
export function configure({ base, key }) {
  if (base !== undefined) config.base = String(base).replace(/\/+$/, "");
  if (key !== undefined) config.key = String(key);
}

export function settings() {
  return { ...config };
}

/** `base + path + ?params&tk=KEY`, each value URL-encoded (a postStr is JSON text). */
export function serviceUrl(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null) q.set(k, String(v));
  }
  if (config.key) q.set("tk", config.key);
  return `${config.base}${path}?${q.toString()}`;
}

/** The longest request we build (the node answers 414 past 64 KB; Tianditu's postStr limit is
 * far below). */
export const MAX_URL = 8192;

/**
 * GET a Tianditu-style JSON answer. Resolves with the parsed body; rejects with an Error whose
 * `status` is the HTTP status and `detail` the server's problem detail (a bad key is 401/403, a
 * quota 429), so a callback can tell the user why.
 */
export async function getJSON(path, params) {
  const url = serviceUrl(path, params);
  if (url.length > MAX_URL) throw Object.assign(new Error("request too long"), { status: 0 });
  let r;
  try {
    r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch (err) {
    throw Object.assign(new Error(`network error: ${err && err.message}`), { status: 0 });
  }
  let body = null;
  try {
    body = await r.json();
  } catch {
    body = null;
  }
  if (!r.ok) {
    const detail = (body && (body.detail || body.title || body.msg || body.message)) || r.statusText;
    throw Object.assign(new Error(`HTTP ${r.status}: ${detail}`), { status: r.status, detail, body });
  }
  if (body === null) throw Object.assign(new Error("not JSON"), { status: r.status });
  return body;
}

/** Reports a service failure the way a page's developer sees it (the console), once per call. */
export function report(service, err) {
  if (typeof console !== "undefined") console.error(`T.${service}: ${err && err.message}`);
}
