/**
 * What the portal's own pages besides the map (`/status`, `/catalogue`) share: the page's
 * configuration, the UI language (the portal's choice, kept in localStorage), who is signed in
 * (`/auth/me` with the node's cookie) and JSON requests to the node (same origin: the user's
 * cookie goes with them, so the node's access rules decide what they answer). Every text from
 * an API goes into the DOM as text (./dom.js `el`).
 */
import {translator} from './dom.js';

export const LANG_KEY = 'geoplat.portal.lang'; // the portal's: one choice for every page

/** @param {string} id An id. @return {HTMLElement} Its element. */
export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * @param {string} id The id of the `<script type="application/json">` holding it.
 * @return {Object} The page's configuration (key, node, id, title, extent).
 */
export function readConfig(id) {
  return JSON.parse(($(id) || {}).textContent || '{}');
}

/**
 * A problem+json answer (RFC 9457) as an Error whose message is its detail.
 * @param {Response} response A refused answer.
 * @return {Promise<Error>} The error.
 */
async function problemOf(response) {
  let doc = null;
  try {
    doc = await response.json();
  } catch {
    doc = null;
  }
  const err = /** @type {any} */ (new Error(doc && (doc.detail || doc.title) ||
    `HTTP ${response.status}`));
  err.status = response.status;
  return err;
}

/**
 * The UI texts and language of a page.
 * @param {Object<string, Object<string, string>>} texts Its texts, zh and en.
 * @return {{t: function(string, Object=): string, lang: function(): string,
 *   apply: function(): void, toggle: function(): void}} Them.
 */
export function language(texts) {
  let lang = localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'zh';
  const t = translator(texts, () => lang);
  const apply = () => {
    document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
    document.querySelectorAll('[data-i18n]').forEach((e) => {
      e.textContent = t(/** @type {HTMLElement} */ (e).dataset.i18n);
    });
    document.querySelectorAll('[data-i18n-placeholder]').forEach((e) => {
      const input = /** @type {HTMLInputElement} */ (e);
      input.placeholder = t(input.dataset.i18nPlaceholder);
      input.setAttribute('aria-label', input.placeholder);
    });
  };
  const toggle = () => {
    lang = lang === 'en' ? 'zh' : 'en';
    localStorage.setItem(LANG_KEY, lang);
    apply();
  };
  return {t, lang: () => lang, apply, toggle};
}

/** JSON requests to the page's node, with the user's cookie (same origin). */
export class NodeClient {
  /** @param {string} node The node's base URL. */
  constructor(node) {
    this.node = node;
    this.user = null;
  }

  /**
   * @param {string} path A path of the node.
   * @param {Object} [params] Query parameters (undefined and '' are left out).
   * @return {string} The URL.
   */
  url(path, params = {}) {
    const url = new URL(path, this.node);
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') {
        url.searchParams.set(k, String(v));
      }
    }
    return url.toString();
  }

  /**
   * @param {string} path A path.
   * @param {Object} [params] Query parameters.
   * @return {Promise<any>} The answer; a refusal throws its problem's detail.
   */
  async get(path, params = {}) {
    const response = await fetch(this.url(path, params),
      {credentials: 'same-origin', headers: {Accept: 'application/json'}});
    if (!response.ok) {
      throw await problemOf(response);
    }
    return response.json();
  }

  /**
   * POST JSON from this page (its own Origin: what the node's CSRF guard accepts from a
   * cookie-authenticated browser, services/web/guards.py).
   * @param {string} path A path.
   * @param {Object} [body] The JSON body.
   * @return {Promise<any>} The answer.
   */
  async post(path, body = {}) {
    const response = await fetch(this.url(path), {method: 'POST', credentials: 'same-origin',
      headers: {'Accept': 'application/json', 'Content-Type': 'application/json'},
      body: JSON.stringify(body)});
    if (!response.ok) {
      throw await problemOf(response);
    }
    return response.json();
  }

  /**
   * Who is looking: `/auth/me` with the node's cookie (401: nobody).
   * @return {Promise<Object|null>} The user (sub, username, roles, node) or null.
   */
  async whoami() {
    try {
      this.user = await this.get('/auth/me');
    } catch {
      this.user = null;
    }
    document.body.dataset.user = this.user ? 'signed-in' : 'anonymous';
    return this.user;
  }

  /**
   * @param {string} nodeId This node's id.
   * @return {boolean} Whether the signed-in user administers it (its `admin` role, or a
   *   platform administrator): what the review decisions need.
   */
  isAdmin(nodeId) {
    const roles = this.user && Array.isArray(this.user.roles) ? this.user.roles : [];
    return roles.includes(`${nodeId}:admin`) || roles.includes('platform_admin');
  }
}

/**
 * @param {?string} iso An RFC 3339 time.
 * @return {string} It as local `YYYY-MM-DD HH:MM:SS`, or '—'.
 */
export function formatTime(iso) {
  if (!iso) {
    return '—';
  }
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) {
    return '—';
  }
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
