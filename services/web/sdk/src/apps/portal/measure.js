/**
 * Measuring on the map: a click adds a point, a double click ends; the length (or the area)
 * is geodesic on the CGCS2000 ellipsoid (./geodesic.js), whatever the grid shown. The `point`
 * tool picks a coordinate: decimal degrees, degrees-minutes-seconds and the CGCS2000 3-degree
 * Gauss-Krüger coordinate of its zone (the SDK's `gaussKruger`, by proj4).
 */
/* global Geoplat */
import {$, t} from './dom.js';
import {dms, pathLength, ringArea} from './geodesic.js';

/**
 * @param {number} m Metres.
 * @return {string} As people read it.
 */
export function formatLength(m) {
  return m >= 1000 ? `${(m / 1000).toFixed(3)} km` : `${m.toFixed(2)} m`;
}

/**
 * @param {number} m2 Square metres.
 * @return {string} m² (or km²), 公顷 and 亩.
 */
export function formatArea(m2) {
  const main = m2 >= 1e6 ? `${(m2 / 1e6).toFixed(4)} km²` : `${m2.toFixed(1)} m²`;
  return `${main} · ${(m2 / 1e4).toFixed(4)} ${t('hectare')} · ${(m2 / (1e4 / 15)).toFixed(2)} ${t('mu')}`;
}

/**
 * @param {number} lon Longitude.
 * @param {number} lat Latitude.
 * @return {string} The coordinate in the three forms people ask for.
 */
export function formatPoint(lon, lat) {
  const parts = [`${lon.toFixed(6)}, ${lat.toFixed(6)}`, `${dms(lon, 'E', 'W')} ${dms(lat, 'N', 'S')}`];
  try {
    const g = Geoplat.gaussKruger(lon, lat);
    parts.push(`${t('gaussKruger')} ${g.epsg} (${g.meridian}°E): X ${g.x.toFixed(3)} m, ` +
      `Y ${g.y.toFixed(3)} m`);
  } catch (err) {
    parts.push(t('outsideZones'));
  }
  return parts.join(' · ');
}

/** The button of each tool. */
const BUTTONS = {line: 'measure-line', area: 'measure-area', point: 'pick-point'};

export default class Measure {
  /** @param {Object} portal The portal. */
  constructor(portal) {
    this.portal = portal;
    /** @type {null|'line'|'area'} */
    this.mode = null;
    /** @type {Array<Array<number>>} [lon, lat] points */
    this.points = [];
    /** The last figure: {mode, metres|squareMetres, points}. */
    this.last = null;
    this.keys = [];
    this.feature = null;
    $('measure-line').addEventListener('click', () => this.toggle('line'));
    $('measure-area').addEventListener('click', () => this.toggle('area'));
    $('pick-point').addEventListener('click', () => this.toggle('point'));
  }

  /** @param {'line'|'area'|'point'} mode The tool: on, or off if it was on. */
  toggle(mode) {
    const on = this.mode !== mode;
    this.stop();
    if (on) {
      this.start(mode);
    }
  }

  /** @param {'line'|'area'|'point'} mode The tool. */
  start(mode) {
    const {ol} = Geoplat;
    this.mode = mode;
    this.points = [];
    this.endedAt = null;
    $(BUTTONS[mode]).setAttribute('aria-pressed', 'true');
    const out = $('measure-out');
    out.hidden = false;
    out.textContent = t(mode === 'point' ? 'pickHint' : 'measureHint');
    const lib = this.portal.map.getLibMap();
    this.keys = [
      lib.on('click', (evt) => this.add(evt.coordinate)),
      // no double-click zoom while measuring (false: the map's interactions do not see it)
      lib.on('dblclick', (evt) => {
        evt.preventDefault();
        return false;
      }),
    ];
    // the browser's own double click (two clicks at one place) ends it; OpenLayers' calls any
    // two clicks within 250 ms a double click, wherever they are
    this.onDblclick = () => {
      if (this.points.length > 1) {
        this.finish();
      }
    };
    lib.getViewport().addEventListener('dblclick', this.onDblclick);
    this.feature = new ol.Feature();
    this.feature.setStyle(new ol.Style({stroke: new ol.Stroke({color: '#e65100', width: 3}),
      fill: new ol.Fill({color: 'rgba(230, 81, 0, 0.15)'})}));
    this.portal.map.graphics.addFeature(this.feature);
  }

  stop() {
    for (const key of this.keys) {
      Geoplat.ol.unByKey(key);
    }
    this.keys = [];
    if (this.onDblclick) {
      this.portal.map.getLibMap().getViewport().removeEventListener('dblclick', this.onDblclick);
      this.onDblclick = null;
    }
    if (this.feature) {
      this.portal.map.graphics.removeFeature(this.feature);
      this.feature = null;
    }
    this.mode = null;
    for (const id of Object.values(BUTTONS)) {
      $(id).setAttribute('aria-pressed', 'false');
    }
    $('measure-out').hidden = true;
  }

  /** @return {boolean} Whether a tool is on (map clicks then measure, not identify). */
  active() {
    return this.mode !== null;
  }

  /** @param {Array<number>} coordinate A click, in the map's projection. */
  add(coordinate) {
    const p = Geoplat.ol.toLonLat(coordinate, this.portal.map.projection);
    // the second click of a double click (OpenLayers sends it before and after `dblclick`)
    const prev = this.points[this.points.length - 1] || this.endedAt;
    if (prev && prev[0] === p[0] && prev[1] === p[1]) {
      return;
    }
    this.endedAt = null;
    if (this.mode === 'point') {
      this.points = [p];
      this.update(true);
      return;
    }
    this.points.push(p);
    this.update(false);
  }

  finish() {
    this.endedAt = this.points[this.points.length - 1] || null;
    this.update(true);
    const out = $('measure-out');
    out.dataset.done = 'true';
    this.points = [];
  }

  /** @param {boolean} done Whether the figure is final. */
  update(done) {
    const {ol} = Geoplat;
    const proj = this.portal.map.projection;
    const coords = this.points.map((p) => ol.fromLonLat(p, proj));
    const out = $('measure-out');
    out.dataset.done = 'false';
    if (this.mode === 'point') {
      const [lon, lat] = this.points[0];
      this.feature.setGeometry(new ol.Point(coords[0]));
      this.last = {mode: 'point', points: [...this.points], done};
      out.dataset.lon = String(lon);
      out.dataset.lat = String(lat);
      out.dataset.done = 'true';
      out.textContent = formatPoint(lon, lat);
    } else if (this.mode === 'line') {
      const metres = pathLength(this.points);
      this.feature.setGeometry(coords.length > 1 ? new ol.LineString(coords) : undefined);
      this.last = {mode: 'line', metres, points: [...this.points], done};
      out.dataset.metres = String(metres);
      out.textContent = `${t('length')}: ${formatLength(metres)}`;
    } else {
      const squareMetres = ringArea(this.points);
      this.feature.setGeometry(coords.length > 2 ? new ol.Polygon([[...coords, coords[0]]])
        : coords.length > 1 ? new ol.LineString(coords) : undefined);
      this.last = {mode: 'area', squareMetres, points: [...this.points], done};
      out.dataset.squareMetres = String(squareMetres);
      out.textContent = `${t('area')}: ${formatArea(squareMetres)}`;
    }
  }
}
