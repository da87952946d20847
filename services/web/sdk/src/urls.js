/**
 * @module geoplat/urls
 * Building the URLs the SDK asks a node: the key goes into every one of them (`tk=`), as
 * Tianditu's clients send it, so that the node counts and checks it on every request.
 */

/** Where the SDK's own files are on a node, relative to its base URL. */
const SCRIPT_PATHS = /\/(sdk\/[^/?#]*|api)$/;

/**
 * The base URL of the node a script was loaded from: its URL without `/sdk/<file>` or `/api`
 * (the Tianditu script), query and fragment.
 * @param {string|URL|undefined|null} src The script's URL.
 * @return {string} The node's base URL ('' when unknown).
 */
export function nodeFromScriptUrl(src) {
  if (!src) {
    return '';
  }
  const url = new URL(String(src));
  const path = url.pathname.replace(SCRIPT_PATHS, '');
  return url.origin + path.replace(/\/+$/, '');
}

/**
 * A node's base URL, checked and without a trailing slash.
 * @param {string} node Base URL (`http://host:port` or with a path prefix).
 * @return {string} The normalised base URL.
 */
export function normaliseNode(node) {
  if (typeof node !== 'string' || !/^https?:\/\//i.test(node)) {
    throw new TypeError(`node must be an http(s) URL, got ${JSON.stringify(node)}`);
  }
  return node.replace(/\/+$/, '');
}

/**
 * `url` with `tk=key` set (replacing any `tk` it had); unchanged without a key.
 * @param {string} url An absolute URL.
 * @param {string|undefined} key The API key.
 * @return {string} The URL with the key.
 */
export function withKey(url, key) {
  if (!key) {
    return url;
  }
  const u = new URL(url);
  u.searchParams.set('tk', key);
  return u.toString();
}

/**
 * A URL of a node: base + path + query parameters (undefined/null/'' values left out) + key.
 * Values are percent-encoded by URLSearchParams (UTF-8), so CQL2 text with quotes, `%`, `&`,
 * `#` or Han characters arrives intact.
 * @param {string} node The node's base URL.
 * @param {string} path The path below it (starting with `/`).
 * @param {Object<string, string|number|boolean|Array<number>|undefined|null>} [params] Query.
 * @param {string} [key] The API key.
 * @return {string} The URL.
 */
export function nodeUrl(node, path, params, key) {
  const u = new URL(normaliseNode(node) + path);
  for (const [name, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === '') {
      continue;
    }
    u.searchParams.set(name, Array.isArray(value) ? value.join(',') : String(value));
  }
  return withKey(u.toString(), key);
}

/**
 * The node's WMTS capabilities document.
 * @param {string} node The node's base URL.
 * @param {string} [key] The API key.
 * @return {string} The URL.
 */
export function capabilitiesUrl(node, key) {
  return nodeUrl(node, '/wmts/1.0.0/WMTSCapabilities.xml', {}, key);
}

/**
 * Checks a collection id (OGC API path segment) and encodes it.
 * @param {string} collection The collection id.
 * @return {string} The encoded segment.
 */
export function collectionSegment(collection) {
  if (typeof collection !== 'string' || !/^[A-Za-z0-9_.-]{1,100}$/.test(collection)) {
    throw new TypeError(`not a collection id: ${JSON.stringify(collection)}`);
  }
  return encodeURIComponent(collection);
}

/**
 * Checks a bbox [minx, miny, maxx, maxy] of finite numbers.
 * @param {Array<number>|undefined} bbox The box.
 * @return {Array<number>|undefined} The box.
 */
export function checkBbox(bbox) {
  if (bbox === undefined || bbox === null) {
    return undefined;
  }
  if (!Array.isArray(bbox) || bbox.length !== 4 || !bbox.every(Number.isFinite)) {
    throw new TypeError('bbox must be [minLon, minLat, maxLon, maxLat]');
  }
  return bbox;
}

/**
 * The first page of an OGC API Features items request (GeoJSON, CRS84).
 * @param {string} node The node's base URL.
 * @param {string} collection The collection id.
 * @param {{bbox?: Array<number>, filter?: string, limit?: number, key?: string}} [options]
 *     `filter` is CQL2 text.
 * @return {string} The URL.
 */
export function itemsUrl(node, collection, options = {}) {
  const limit = options.limit ?? 500;
  if (!Number.isInteger(limit) || limit < 1 || limit > 10000) {
    throw new TypeError('limit must be an integer between 1 and 10000');
  }
  if (options.filter !== undefined && typeof options.filter !== 'string') {
    throw new TypeError('filter must be CQL2 text');
  }
  return nodeUrl(node, `/ogc/collections/${collectionSegment(collection)}/items`, {
    f: 'json',
    limit,
    bbox: checkBbox(options.bbox),
    filter: options.filter,
  }, options.key);
}

/**
 * The vector tile URL template of a collection (OGC API Tiles, MVT, WebMercatorQuad).
 * @param {string} node The node's base URL.
 * @param {string} collection The collection id.
 * @param {string} [key] The API key.
 * @return {string} The template with `{z}`, `{y}`, `{x}`.
 */
export function vectorTileTemplate(node, collection, key) {
  const url = nodeUrl(node,
    `/ogc/collections/${collectionSegment(collection)}/tiles/WebMercatorQuad/0/0/0`,
    {f: 'mvt'}, key);
  return url.replace('/0/0/0?', '/{z}/{y}/{x}?');
}

/** The place-name services of `/api/places` (README "Place names and addresses"). */
export const PLACE_SERVICES = ['geocode', 'reverse', 'search', 'suggest'];

/**
 * A URL of the place-name API.
 * @param {string} node The node's base URL.
 * @param {string} service `geocode`, `reverse`, `search`, `suggest` or `admin/<code|name>`.
 * @param {Object<string, string|number|Array<number>|undefined>} params Query parameters.
 * @param {string} [key] The API key.
 * @return {string} The URL.
 */
export function placesUrl(node, service, params, key) {
  let path;
  if (PLACE_SERVICES.includes(service)) {
    path = `/api/places/${service}`;
  } else if (service.startsWith('admin/') && service.length > 6) {
    path = `/api/places/admin/${encodeURIComponent(service.slice(6))}`;
  } else {
    throw new TypeError(`unknown place-name service ${JSON.stringify(service)}`);
  }
  return nodeUrl(node, path, params, key);
}
