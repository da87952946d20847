/**
 * The pure part of the draw-query (勾绘查询, ./drawquery.js): the CQL filter of a drawn
 * geometry, a circle as a polygon on the ellipsoid, the statistics of the features found
 * (count, ellipsoidal area and length on CGCS2000 by ./geodesic.js, sums and averages of numeric
 * fields grouped by a field) and the exports (GeoJSON, CSV with WKT geometry). No DOM, no
 * OpenLayers: the node tests import it as it is.
 */
import {destination, pathLength, ringArea} from './geodesic.js';

export const MU_M2 = 10000 / 15;  // 1 亩 = 666.666… m²
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DIGITS = 7;  // ~1 cm: the coordinates of a drawn geometry as sent (and shown)

/** @param {number} v A coordinate. @return {number} It rounded as the filter sends it. */
export const round7 = (v) => Number(v.toFixed(DIGITS));

/**
 * A geometry with its coordinates rounded (what the filter sends and the page keeps).
 * @param {{type: string, coordinates: Array}} geometry GeoJSON (lon/lat).
 * @return {{type: string, coordinates: Array}} The same, rounded.
 */
export function rounded(geometry) {
  const r = (c) => Array.isArray(c[0]) ? c.map(r) : c.map(round7);
  return {type: geometry.type, coordinates: r(geometry.coordinates)};
}

/**
 * A circle on the ellipsoid as a polygon: `n` points at `radius` metres (geodesic) around
 * the centre.
 * @param {Array<number>} centre [lon, lat].
 * @param {number} radius Metres.
 * @param {number} [n] Points.
 * @return {{type: 'Polygon', coordinates: Array}} The polygon (closed ring, anticlockwise).
 */
export function circlePolygon(centre, radius, n = 72) {
  const ring = [];
  for (let i = 0; i < n; i++) {
    ring.push(destination(centre[0], centre[1], 360 - i * 360 / n, radius));
  }
  ring.push(ring[0]);
  return {type: 'Polygon', coordinates: [ring]};
}

const wktPoint = (c) => `${c[0]} ${c[1]}`;
const wktLine = (cs) => `(${cs.map(wktPoint).join(', ')})`;
const wktPolygon = (rings) => `(${rings.map(wktLine).join(', ')})`;

/**
 * @param {{type: string, coordinates?: Array, geometries?: Array}|null} geometry GeoJSON.
 * @return {string} Its WKT ('' for none).
 */
export function toWkt(geometry) {
  if (!geometry) {
    return '';
  }
  const c = geometry.coordinates;
  switch (geometry.type) {
    case 'Point': return `POINT (${wktPoint(c)})`;
    case 'MultiPoint': return `MULTIPOINT (${c.map((p) => `(${wktPoint(p)})`).join(', ')})`;
    case 'LineString': return `LINESTRING ${wktLine(c)}`;
    case 'MultiLineString': return `MULTILINESTRING (${c.map(wktLine).join(', ')})`;
    case 'Polygon': return `POLYGON ${wktPolygon(c)}`;
    case 'MultiPolygon': return `MULTIPOLYGON (${c.map(wktPolygon).join(', ')})`;
    case 'GeometryCollection':
      return `GEOMETRYCOLLECTION (${(geometry.geometries || []).map(toWkt).join(', ')})`;
    default: throw new TypeError(`unknown geometry type ${geometry.type}`);
  }
}

/**
 * The filter of the features intersecting an area, as pygeoapi 0.21 reads a GET `filter`:
 * its text parser (pygeofilter's ECQL) names CQL2's S_INTERSECTS `INTERSECTS`; the
 * coordinates are lon/lat (`filter-crs` CRS84).
 * @param {string} property The geometry property (from the queryables).
 * @param {{type: string, coordinates: Array}} geometry A Polygon or MultiPolygon (lon/lat).
 * @return {string} The filter.
 */
export function intersectsFilter(property, geometry) {
  const name = IDENT.test(property) ? property : `"${property.replace(/"/g, '""')}"`;
  // ECQL's WKT has no space after the type name
  return `INTERSECTS(${name}, ${toWkt(rounded(geometry)).replace(/^(\w+) \(/, '$1(')})`;
}

/**
 * The ellipsoidal area and length of a geometry.
 * @param {{type: string, coordinates?: Array, geometries?: Array}|null} geometry GeoJSON.
 * @return {{area: number, length: number}} m² (holes taken out), m (lines; polygons: 0).
 */
export function measure(geometry) {
  if (!geometry) {
    return {area: 0, length: 0};
  }
  const c = geometry.coordinates;
  const polygon = (rings) => Math.max(0, rings.reduce((sum, ring, i) =>
    sum + (i === 0 ? 1 : -1) * ringArea(ring), 0));
  switch (geometry.type) {
    case 'Polygon': return {area: polygon(c), length: 0};
    case 'MultiPolygon': return {area: c.reduce((s, p) => s + polygon(p), 0), length: 0};
    case 'LineString': return {area: 0, length: pathLength(c)};
    case 'MultiLineString': return {area: 0, length: c.reduce((s, l) => s + pathLength(l), 0)};
    case 'GeometryCollection':
      return (geometry.geometries || []).map(measure).reduce((a, b) =>
        ({area: a.area + b.area, length: a.length + b.length}), {area: 0, length: 0});
    default: return {area: 0, length: 0};
  }
}

/**
 * A number of a property (numbers, and text that is one), else null.
 * @param {*} value The value.
 * @return {number|null} The number.
 */
function numberOf(value) {
  if (typeof value === 'number') {
    return Number.isFinite(value) ? value : null;
  }
  if (typeof value === 'string' && /^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$/.test(value)) {
    return Number(value);
  }
  return null;
}

/**
 * The statistics of the features of one layer.
 * @param {Array<Object>} features GeoJSON features.
 * @param {{groupBy?: string, numeric?: Array<string>}} [options] The field to group by and
 *   the numeric fields to sum and average.
 * @return {{count: number, area: number, hectares: number, mu: number, length: number,
 *   sums: Object<string, number>, groups: Array<{key: string, count: number, area: number,
 *   sums: Object<string, number>, averages: Object<string, number|null>}>}} The figures.
 */
export function statistics(features, options = {}) {
  const numeric = options.numeric || [];
  const blank = () => ({count: 0, area: 0, length: 0, sums: Object.fromEntries(
    numeric.map((f) => [f, 0])), counted: Object.fromEntries(numeric.map((f) => [f, 0]))});
  const all = blank();
  const groups = new Map();
  for (const feature of features) {
    const props = (feature && feature.properties) || {};
    const {area, length} = measure(feature && feature.geometry);
    const targets = [all];
    if (options.groupBy) {
      const raw = props[options.groupBy];
      const key = raw === null || raw === undefined ? '' : String(raw);
      if (!groups.has(key)) {
        groups.set(key, blank());
      }
      targets.push(groups.get(key));
    }
    for (const t of targets) {
      t.count += 1;
      t.area += area;
      t.length += length;
      for (const f of numeric) {
        const v = numberOf(props[f]);
        if (v !== null) {
          t.sums[f] += v;
          t.counted[f] += 1;
        }
      }
    }
  }
  const averages = (t) => Object.fromEntries(numeric.map((f) =>
    [f, t.counted[f] ? t.sums[f] / t.counted[f] : null]));
  return {count: all.count, area: all.area, hectares: all.area / 1e4, mu: all.area / MU_M2,
    length: all.length, sums: all.sums, averages: averages(all),
    groups: [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0]))
      .map(([key, t]) => ({key, count: t.count, area: t.area, sums: t.sums,
        averages: averages(t)}))};
}

/**
 * One CSV cell: quoted when it must be (RFC 4180), and text a spreadsheet would run as a
 * formula (starting with = + - @, a tab or a carriage return) prefixed with a quote (').
 * @param {*} value The value.
 * @return {string} The cell.
 */
export function csvCell(value) {
  if (value === null || value === undefined) {
    return '';
  }
  let text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  if (typeof value !== 'number' && /^[=+\-@\t\r]/.test(text)) {
    text = `'${text}`;
  }
  return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * Features as CSV: a header (id, the fields, wkt), a row each.
 * @param {Array<Object>} features GeoJSON features.
 * @param {Array<string>} fields The property names, in order.
 * @return {string} CSV (CRLF line ends).
 */
export function toCsv(features, fields) {
  const lines = [['id', ...fields, 'wkt'].map(csvCell).join(',')];
  for (const f of features) {
    const props = f.properties || {};
    lines.push([f.id, ...fields.map((name) => props[name]), toWkt(f.geometry)].map(csvCell)
      .join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

/**
 * Features as a GeoJSON FeatureCollection (text).
 * @param {Array<Object>} features GeoJSON features.
 * @return {string} JSON.
 */
export function toGeoJson(features) {
  return JSON.stringify({type: 'FeatureCollection', features: features.map((f) =>
    ({type: 'Feature', id: f.id, geometry: f.geometry, properties: f.properties || {}}))});
}
