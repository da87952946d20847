/**
 * The header's account area: an anonymous visitor gets "登录 Sign in" and "注册 Register"
 * (the node's /auth/login and /auth/register, coming back to this very view: `next` carries the
 * path, query and hash); a signed-in user gets their name, "我的密钥 My keys" (the main node's
 * /sso/keys) and "退出 Sign out" (a same-origin JSON POST to /auth/logout, which the node's
 * CSRF guard lets through; the federation's sign-out page follows). The view of the moment of
 * signing out is kept in sessionStorage and restored when the node's `/` comes back without one.
 */
import {$, el, t} from './dom.js';
import {authLink} from './links.js';

const STASH = 'geoplat.portal.signedOutView';

/** Before the portal reads its view: the hash of the page the user signed out from. */
export function restoreSignedOutView() {
  try {
    const hash = sessionStorage.getItem(STASH);
    sessionStorage.removeItem(STASH);
    if (hash && hash.startsWith('#') && !location.hash) {
      history.replaceState(null, '', hash);
    }
  } catch {
    // storage refused (private mode): the default view
  }
}

/**
 * @param {string} id The element's id.
 * @param {string} path `/auth/login` or `/auth/register`.
 * @param {string} text The text's name.
 * @return {HTMLAnchorElement} A link that leads back to the view shown when it is followed.
 */
function authAnchor(id, path, text) {
  const a = /** @type {HTMLAnchorElement} */ (el('a', t(text)));
  a.id = id;
  a.dataset.i18n = text;
  a.href = authLink(path, location);
  const refresh = () => {
    a.href = authLink(path, location);
  };
  // the view changes as the map moves: the link is made when it is used
  a.addEventListener('pointerdown', refresh);
  a.addEventListener('focus', refresh);
  a.addEventListener('click', refresh);
  return a;
}

/**
 * Fills the header's account area for `portal.user`.
 * @param {Object} portal The portal (`user`, `config.main`, `node`, `fail`).
 */
export function renderAccount(portal) {
  const box = $('account');
  if (!portal.user) {
    box.replaceChildren(authAnchor('sign-in', '/auth/login', 'signIn'),
      authAnchor('register', '/auth/register', 'register'));
    return;
  }
  const name = el('span', portal.user.username, 'user-name');
  name.id = 'user-name';
  const keys = /** @type {HTMLAnchorElement} */ (el('a', t('myKeys')));
  keys.id = 'my-keys';
  keys.dataset.i18n = 'myKeys';
  keys.href = new URL('/sso/keys', portal.config.main || portal.node).toString();
  const out = el('button', t('signOut'));
  out.id = 'sign-out';
  out.dataset.i18n = 'signOut';
  /** @type {HTMLButtonElement} */ (out).type = 'button';
  out.addEventListener('click', () => signOut(portal));
  box.replaceChildren(name, keys, out);
}

/**
 * Signs out at this node (its cookie goes), then continues to the federation's sign-out.
 * @param {Object} portal The portal.
 */
async function signOut(portal) {
  try {
    const response = await fetch(new URL('/auth/logout', portal.node).toString(), {
      method: 'POST', credentials: 'same-origin', body: '{}',
      headers: {'Content-Type': 'application/json', Accept: 'application/json'}});
    const answer = response.ok ? await response.json() : null;
    try {
      sessionStorage.setItem(STASH, location.hash);
    } catch {
      // not kept: the default view after signing out
    }
    const next = answer && typeof answer.location === 'string' &&
      /^https?:\/\//.test(answer.location) ? answer.location : '/';
    location.assign(next);
  } catch (err) {
    portal.fail(err);
  }
}
