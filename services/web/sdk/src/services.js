/**
 * @module geoplat/services
 * The node's web services with the key injected: place names (`/api/places`, README "Place
 * names and addresses") and OGC API Features. Every function returns a promise that rejects
 * with a GeoplatError carrying the node's problem detail (status, title, detail).
 */
import {defaultKey, defaultNode} from './defaults.js';
import {getJson} from './http.js';
import {fetchAllPages} from './overlays/FeaturesOverlay.js';
import {checkBbox, itemsUrl, placesUrl} from './urls.js';

/**
 * @typedef {Object} ServiceOptions
 * @property {string} [key] API key (default: `setDefaults`' key).
 * @property {string} [node] Node base URL (default: where the SDK was loaded from).
 */

/**
 * @param {ServiceOptions} options Options.
 * @return {{node: string, key: string}} The node and key to use.
 */
function target(options) {
  return {node: options.node || defaultNode(), key: options.key ?? defaultKey()};
}

/**
 * @param {string} text A query text.
 * @param {string} what Its name (for the message).
 * @return {string} It.
 */
function checkText(text, what) {
  if (typeof text !== 'string' || !text.trim() || text.length > 100) {
    throw new TypeError(`${what} must be 1 to 100 characters`);
  }
  return text;
}

/**
 * Place search.
 * @param {string} q What to look for.
 * @param {ServiceOptions & {bbox?: Array<number>, near?: Array<number>, radius?: number,
 *     admin?: string, category?: string, limit?: number, offset?: number}} [options] Where.
 * @return {Promise<Object>} GeoJSON FeatureCollection of places.
 */
export function search(q, options = {}) {
  const {node, key} = target(options);
  return getJson(placesUrl(node, 'search', {q: checkText(q, 'q'),
    bbox: checkBbox(options.bbox), near: options.near && options.near.join(','),
    radius: options.radius, admin: options.admin, category: options.category,
    limit: options.limit, offset: options.offset}, key));
}

/**
 * Address -> point.
 * @param {string} address The address as people write it.
 * @param {ServiceOptions} [options] Options.
 * @return {Promise<Object>} The node's answer (GeoJSON).
 */
export function geocode(address, options = {}) {
  const {node, key} = target(options);
  return getJson(placesUrl(node, 'geocode', {address: checkText(address, 'address')}, key));
}

/**
 * Point -> address.
 * @param {Array<number>} lngLat [lon, lat].
 * @param {ServiceOptions} [options] Options.
 * @return {Promise<Object>} The node's answer (GeoJSON).
 */
export function reverse(lngLat, options = {}) {
  if (!Array.isArray(lngLat) || !Number.isFinite(lngLat[0]) || !Number.isFinite(lngLat[1])) {
    throw new TypeError('reverse needs [lon, lat]');
  }
  const {node, key} = target(options);
  return getJson(placesUrl(node, 'reverse', {lon: lngLat[0], lat: lngLat[1]}, key));
}

/**
 * An administrative division by code or name.
 * @param {string} codeOrName GB/T 2260 code (`330100`) or name (`杭州`).
 * @param {ServiceOptions & {children?: number, geometry?: boolean}} [options] Options.
 * @return {Promise<Object>} The division.
 */
export function admin(codeOrName, options = {}) {
  const {node, key} = target(options);
  return getJson(placesUrl(node, `admin/${checkText(String(codeOrName), 'code or name')}`,
    {children: options.children, geometry: options.geometry ? 'true' : undefined}, key));
}

/**
 * Features of a collection (all pages, up to `maxFeatures`).
 * @param {string} collection Collection id.
 * @param {ServiceOptions & {bbox?: Array<number>, filter?: string, maxFeatures?: number}}
 *     [options] `filter` is CQL2 text.
 * @return {Promise<{type: string, features: Array<Object>, numberMatched: (number|undefined)}>}
 *     A GeoJSON FeatureCollection (CRS84).
 */
export async function features(collection, options = {}) {
  const {node, key} = target(options);
  const url = itemsUrl(node, collection, {bbox: options.bbox, filter: options.filter, key});
  const result = await fetchAllPages(url, options.maxFeatures ?? 10000);
  return {type: 'FeatureCollection', ...result};
}
