/**
 * The portal's links that must come back to the same view, and the shared-annotation token of
 * its URL: pure functions (unit-tested in test/annotate.test.mjs).
 */

/** The node accepts a `next` of at most this many characters (services/access/routes.py). */
export const MAX_NEXT = 2048;
/** A share token, as the node makes them (services/annotations/model.py). */
export const NOTE_TOKEN = /^[A-Za-z0-9_-]{32}$/;

/**
 * Where the node's sign-in (or registration) should lead back to: this page's path, query and
 * hash (the view lives in the hash, which browsers never send); the path alone if too long.
 * @param {{pathname: string, search: string, hash: string}} loc `location`.
 * @return {string} The `next` value.
 */
export function backTo(loc) {
  const whole = loc.pathname + loc.search + loc.hash;
  return whole.length <= MAX_NEXT ? whole : loc.pathname + loc.search;
}

/**
 * @param {string} path `/auth/login` or `/auth/register`.
 * @param {{pathname: string, search: string, hash: string}} loc `location`.
 * @return {string} The link, with `next`.
 */
export function authLink(path, loc) {
  return `${path}?${new URLSearchParams({next: backTo(loc)})}`;
}

/**
 * @param {string} search `location.search`.
 * @return {string|null} The share token of `?note=`, when it is one.
 */
export function noteToken(search) {
  const token = new URLSearchParams(search).get('note');
  return token && NOTE_TOKEN.test(token) ? token : null;
}

/**
 * @param {string} origin `location.origin`.
 * @param {string} token A share token.
 * @return {string} The portal URL that shows the shared annotation.
 */
export function shareUrl(origin, token) {
  return `${origin}/?${new URLSearchParams({note: token})}`;
}

/**
 * The body of a POST or PUT: a GeoJSON Feature (CRS84).
 * @param {Object|null} geometry A GeoJSON geometry (left out when null: a PUT keeps it).
 * @param {string} title The title.
 * @param {string} note The note.
 * @return {Object} The feature.
 */
export function annotationDoc(geometry, title, note) {
  const doc = {type: 'Feature', properties: {title: title.trim(), note: note.trim()}};
  if (geometry) {
    doc.geometry = geometry;
  }
  return doc;
}
