/**
 * @module geoplat/Graphic
 * Markers, lines, polygons and circles the page draws on the map (lon/lat in, the map's
 * projection inside). Each is an OpenLayers feature in the map's graphics layer.
 */
import Feature from 'ol/Feature.js';
import Observable from 'ol/Observable.js';
import {circular} from 'ol/geom/Polygon.js';
import LineString from 'ol/geom/LineString.js';
import Point from 'ol/geom/Point.js';
import Polygon from 'ol/geom/Polygon.js';
import {fromLonLat} from 'ol/proj.js';
import {toStyle} from './style.js';

/**
 * Checks a [lon, lat] pair.
 * @param {Array<number>} lngLat The position.
 * @return {Array<number>} It.
 */
export function checkLngLat(lngLat) {
  if (!Array.isArray(lngLat) || lngLat.length < 2 || !Number.isFinite(lngLat[0]) ||
      !Number.isFinite(lngLat[1]) || Math.abs(lngLat[1]) > 90 || Math.abs(lngLat[0]) > 540) {
    throw new TypeError(`not a [lon, lat] position: ${JSON.stringify(lngLat)}`);
  }
  return [lngLat[0], lngLat[1]];
}

/**
 * @typedef {Object} GraphicOptions
 * @property {string} [title] Name (a marker's popup text when `popup` is not given).
 * @property {string|Node} [popup] Popup content opened on click.
 * @property {import('./style.js').StyleOptions} [style] The style.
 * @property {Object} [properties] Page data kept with it.
 */

export default class Graphic extends Observable {
  /**
   * @param {'marker'|'line'|'polygon'|'circle'} kind What it is.
   * @param {import('ol/geom/Geometry.js').default} geometry In lon/lat.
   * @param {GraphicOptions} options Its options.
   * @param {import('ol/proj/Projection.js').default} projection The map projection.
   */
  constructor(kind, geometry, options, projection) {
    super();
    this.kind = kind;
    this.options = options || {};
    this.projection_ = projection;
    this.feature = new Feature({geometry: geometry.transform('EPSG:4326', projection),
      ...(this.options.properties || {}), title: this.options.title});
    this.feature.setStyle(toStyle(this.options.style));
    this.feature.set('geoplatGraphic', this);
    /** @type {((g: Graphic) => void)|null} set by the map that holds it */
    this.remover_ = null;
  }

  /** @return {string|Node|null} What its popup shows. */
  popupContent() {
    return this.options.popup ?? this.options.title ?? null;
  }

  /**
   * Moves a marker.
   * @param {Array<number>} lngLat The new position.
   */
  setPosition(lngLat) {
    const p = checkLngLat(lngLat);
    /** @type {Point} */ (this.feature.getGeometry()).setCoordinates(
      fromLonLat(p, this.projection_));
  }

  /** Takes it off its map. */
  remove() {
    if (this.remover_) {
      this.remover_(this);
    }
  }

  /** @return {Feature} The OpenLayers feature. */
  getLibFeature() {
    return this.feature;
  }
}

/**
 * The geometry (lon/lat) of a graphic.
 * @param {'marker'|'line'|'polygon'|'circle'} kind What it is.
 * @param {Object} spec `position` (marker), `path` (line), `rings` or `path` (polygon),
 *     `center` and `radius` in metres (circle).
 * @return {import('ol/geom/Geometry.js').default} The geometry.
 */
export function geometryOf(kind, spec) {
  if (kind === 'marker') {
    return new Point(checkLngLat(spec.position));
  }
  if (kind === 'line') {
    if (!Array.isArray(spec.path) || spec.path.length < 2) {
      throw new TypeError('a line needs a path of 2 or more [lon, lat]');
    }
    return new LineString(spec.path.map(checkLngLat));
  }
  if (kind === 'polygon') {
    const rings = spec.rings || (spec.path ? [spec.path] : null);
    if (!Array.isArray(rings) || rings.some((r) => !Array.isArray(r) || r.length < 3)) {
      throw new TypeError('a polygon needs rings of 3 or more [lon, lat]');
    }
    return new Polygon(rings.map((r) => r.map(checkLngLat)));
  }
  if (kind === 'circle') {
    const radius = spec.radius;
    if (!Number.isFinite(radius) || radius <= 0 || radius > 5e6) {
      throw new TypeError('a circle needs a radius in metres (0 < radius <= 5,000 km)');
    }
    // a geodesic circle: round on the ground in every projection
    return circular(checkLngLat(spec.center), radius, 128);
  }
  throw new TypeError(`unknown graphic ${kind}`);
}
