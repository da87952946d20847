/**
 * What a catalogue record (an OGC API Records feature, services/registry/provider.py) offers:
 * its service URL (the `service` link: an OGC API collection, a WMTS or WMS capabilities
 * document, a node's landing page) to paste into QGIS, and where it opens in the portal (its
 * node's `/` with the view in the hash, ../portal/share.js), when the portal can show it.
 */
import {writeView} from '../portal/share.js';

const OGC = /^(https?:\/\/[^/?#]+(?:\/[^?#]*?)?)\/ogc\/collections\/([^/?#]+)(?:\/tiles)?$/;
const TILES = /^(https?:\/\/[^/?#]+(?:\/[^?#]*?)?)\/(?:wmts|wms)(?:[/?]|$)/;
const BASEMAPS = {vec: 'vec', cva: 'vec', img: 'img', cia: 'img', ter: 'ter', cta: 'ter'};

/**
 * @param {Object} feature A record.
 * @return {?string} Its service URL (http or https), or null.
 */
export function serviceUrl(feature) {
  const links = feature && Array.isArray(feature.links) ? feature.links : [];
  const link = links.find((l) => l && l.rel === 'service' && typeof l.href === 'string') ||
    links.find((l) => l && typeof l.href === 'string');
  return link && /^https?:\/\//i.test(link.href) ? link.href : null;
}

/**
 * The zoom level at which `bbox` about fills a ~500 px map (the CGCS2000 grid: level 1 is
 * 360° over 512 px, each level halves it).
 * @param {Array<number>} bbox [minx, miny, maxx, maxy] in degrees.
 * @return {number} A level from 1 to 18.
 */
export function zoomFor(bbox) {
  const span = Math.max(bbox[2] - bbox[0], bbox[3] - bbox[1], 1e-6);
  return Math.max(1, Math.min(18, Math.floor(Math.log2(360 / span)) + 1));
}

/**
 * @param {Object} feature A record.
 * @return {?string} The portal URL showing it (its node's `/#...`), or null when the portal
 *   cannot (an external service, a composite layer).
 */
export function mapLink(feature) {
  const url = serviceUrl(feature);
  const p = feature && feature.properties || {};
  if (!url) {
    return null;
  }
  const bbox = Array.isArray(feature.bbox) && feature.bbox.length === 4 ? feature.bbox :
    bboxOf(feature.geometry);
  const view = {center: [120, 30], zoom: 8, grid: 'c', basemap: 'vec', labels: true,
    layers: []};
  if (bbox) {
    view.center = [(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2];
    view.zoom = zoomFor(bbox);
  }
  let base = null;
  const layer = typeof p.layer_id === 'string' ? p.layer_id : '';
  if (p.type === 'node') {
    base = url.replace(/\/+$/, '');
  } else if (/^OGCAPI-(Features|Tiles)$/.test(p.type) && layer) {
    const m = OGC.exec(url);
    if (m && decodeURIComponent(m[2]) === layer) {
      base = m[1];
      view.layers = [{id: layer, opacity: 1}];
    }
  } else if ((p.type === 'WMTS' || p.type === 'WMS') && BASEMAPS[layer]) {
    const m = TILES.exec(url);
    if (m) {
      base = m[1];
      view.basemap = BASEMAPS[layer];
    }
  }
  if (!base || !/^https?:\/\/[^/?#]+/i.test(base)) {
    return null;
  }
  return `${base}/${writeView(view)}`;
}

/**
 * @param {?Object} geometry A record's geometry (its bbox as a polygon).
 * @return {?Array<number>} Its bbox.
 */
function bboxOf(geometry) {
  const ring = geometry && geometry.type === 'Polygon' && Array.isArray(geometry.coordinates) &&
    geometry.coordinates[0];
  if (!Array.isArray(ring) || !ring.length) {
    return null;
  }
  const xs = ring.map((c) => Number(c[0]));
  const ys = ring.map((c) => Number(c[1]));
  if (![...xs, ...ys].every(Number.isFinite)) {
    return null;
  }
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}

/**
 * @param {string} text What the extent field holds.
 * @return {?Array<number>|undefined} [minx, miny, maxx, maxy]; undefined when empty, null
 *   when it does not parse.
 */
export function parseBbox(text) {
  const s = text.trim();
  if (!s) {
    return undefined;
  }
  const v = s.split(/[\s,]+/).map(Number);
  if (v.length !== 4 || !v.every(Number.isFinite) || v[0] > v[2] || v[1] > v[3] ||
      Math.abs(v[0]) > 180 || Math.abs(v[2]) > 180 || Math.abs(v[1]) > 90 ||
      Math.abs(v[3]) > 90) {
    return null;
  }
  return v;
}
