/**
 * @module geoplat/GeoplatError
 */

/**
 * An error the node answered (or the network failed with): the server's problem detail,
 * RFC 9457 for the JSON APIs, an OGC exception report for WMTS/WMS.
 */
export default class GeoplatError extends Error {
  /**
   * @param {{status: number, title: string, detail?: string, url?: string, type?: string}} p
   *     The problem: HTTP status (0: no answer), title, detail, the URL asked.
   */
  constructor(p) {
    super(p.detail ? `${p.title}: ${p.detail}` : p.title);
    this.name = 'GeoplatError';
    /** @type {number} */
    this.status = p.status;
    /** @type {string} */
    this.title = p.title;
    /** @type {string} */
    this.detail = p.detail || '';
    /** @type {string} */
    this.url = stripKey(p.url || '');
    /** @type {string} */
    this.type = p.type || 'about:blank';
  }

  /** @return {{status: number, title: string, detail: string, url: string}} Plain data. */
  toJSON() {
    return {status: this.status, title: this.title, detail: this.detail, url: this.url};
  }
}

/**
 * The URL without its key, for messages (errors are often logged).
 * @param {string} url A URL.
 * @return {string} The URL with `tk` masked.
 */
export function stripKey(url) {
  return url.replace(/([?&]tk=)[^&#]*/g, '$1***');
}

const MAX_BODY = 64 * 1024;

/**
 * The problem a failed response carries: problem+json, an OGC ExceptionReport, or the status.
 * @param {Response} response A fetch response that is not ok.
 * @param {string} url The URL asked.
 * @return {Promise<GeoplatError>} The error.
 */
export async function problemFromResponse(response, url) {
  const status = response.status;
  let title = response.statusText || `HTTP ${status}`;
  let detail = '';
  let type;
  let text = '';
  try {
    text = (await response.text()).slice(0, MAX_BODY);
  } catch {
    text = '';
  }
  const ctype = (response.headers.get('content-type') || '').toLowerCase();
  if (ctype.includes('json')) {
    try {
      const body = JSON.parse(text);
      if (body && typeof body === 'object') {
        title = typeof body.title === 'string' ? body.title : title;
        detail = typeof body.detail === 'string' ? body.detail
          : typeof body.description === 'string' ? body.description : '';
        type = typeof body.type === 'string' ? body.type : undefined;
      }
    } catch {
      detail = '';
    }
  } else if (ctype.includes('xml') && typeof DOMParser !== 'undefined') {
    const doc = new DOMParser().parseFromString(text, 'application/xml');
    const exc = doc.getElementsByTagNameNS('*', 'Exception')[0] ||
      doc.getElementsByTagName('ServiceException')[0];
    if (exc) {
      title = exc.getAttribute('exceptionCode') || exc.getAttribute('code') || title;
      const txt = exc.getElementsByTagNameNS('*', 'ExceptionText')[0];
      detail = ((txt || exc).textContent || '').trim();
    }
  }
  return new GeoplatError({status, title, detail, url, type});
}

/**
 * The error of a request that got no answer (network, CORS, aborted).
 * @param {unknown} cause What fetch threw.
 * @param {string} url The URL asked.
 * @return {GeoplatError} The error.
 */
export function networkError(cause, url) {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new GeoplatError({status: 0, title: 'Network error', detail, url});
}
