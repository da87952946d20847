/**
 * Navigation by administrative division (行政区导航): province → city → county pickers filled
 * from the place-names service (`/api/places/admin/中国?children=1` lists the provinces the node
 * knows, `/api/places/admin/{code}?children=1&geometry=true` a division's children and outline).
 * Picking one zooms the map to its bounds and outlines it; a node below the national one knows
 * only its own province (and city), which the pickers then hold already chosen.
 */
/* global Geoplat */
import {$, el, t} from './dom.js';

const LEVELS = ['province', 'city', 'county'];
const COUNTRY = '中国';

export default class DivisionNav {
  /** @param {Object} portal The portal (getJson, map). */
  constructor(portal) {
    this.portal = portal;
    /** @type {Object|null} the picked division (GeoJSON feature of /api/places/admin) */
    this.current = null;
    this.layer = null;
    this.seq = 0;
    this.provinces = [];
    this.selects = LEVELS.map((level) => /** @type {HTMLSelectElement} */ ($(`div-${level}`)));
    this.selects.forEach((select, i) => {
      select.addEventListener('change', () => this.picked(i, select.value));
    });
    $('div-clear').addEventListener('click', () => this.clear());
    // the draw-query (勾绘查询) over the picked division's outline
    $('div-query').addEventListener('click', () => {
      const g = this.geometry();
      if (g && this.portal.drawQuery) {
        this.portal.drawQuery.runWith(g).catch((err) => this.portal.fail(err));
      }
    });
  }

  /** Lists the provinces; where there is one only, picks it (and so on down). */
  async load() {
    const answer = await this.portal.getJson(`/api/places/admin/${encodeURIComponent(COUNTRY)}`,
      {children: 1});
    const country = (answer.features || [])[0];
    const provinces = country ? (country.properties.children || []) : [];
    this.provinces = provinces;
    this.fill(0, provinces);
    if (provinces.length === 1) {
      this.selects[0].value = provinces[0].code;
      await this.picked(0, provinces[0].code, {zoom: false, auto: true});
    }
  }

  /**
   * @param {number} i The picker (0 province, 1 city, 2 county).
   * @param {Array<Object>} children Its choices ({code, name}).
   */
  fill(i, children) {
    const select = this.selects[i];
    const first = el('option', t(LEVELS[i]));
    first.value = '';
    select.replaceChildren(first, ...children.map((c) => {
      const option = el('option', c.name);
      option.value = c.code;
      return option;
    }));
    select.disabled = !children.length;
    for (let j = i + 1; j < this.selects.length; j++) {
      this.selects[j].replaceChildren(el('option', t(LEVELS[j])));
      this.selects[j].disabled = true;
    }
  }

  /**
   * A division was picked in picker `i` (empty: back to the one above).
   * @param {number} i The picker.
   * @param {string} code Its code.
   * @param {{zoom: boolean, auto?: boolean}} [options] Whether to zoom to it; `auto`: it was
   *     the only choice (a node's own area): not outlined, and an only child is picked too.
   * @return {Promise<Object|null>} The division shown.
   */
  async picked(i, code, options = {zoom: true}) {
    const seq = ++this.seq;
    if (!code) {  // back to the division above (or none)
      if (i === 0) {
        this.fill(0, this.provinces);
        this.clear();
        return null;
      }
      return this.picked(i - 1, this.selects[i - 1].value, options);
    }
    let answer;
    try {
      answer = await this.portal.getJson(`/api/places/admin/${encodeURIComponent(code)}`,
        {children: 1, geometry: true});
    } catch (err) {
      this.portal.fail(err);
      return null;
    }
    if (seq !== this.seq) {
      return this.current;
    }
    const division = (answer.features || [])[0];
    if (!division) {
      return null;
    }
    const children = (division.properties.children || []).filter((c) =>
      LEVELS.indexOf(c.kind) === i + 1);
    if (i + 1 < this.selects.length) {
      this.fill(i + 1, children);
    }
    if (!options.auto) {
      this.show(division, options.zoom);
    } else if (children.length === 1 && i + 1 < this.selects.length) {
      this.selects[i + 1].value = children[0].code;
      return this.picked(i + 1, children[0].code, options);
    }
    return division;
  }

  /**
   * Outlines a division and zooms to its bounds.
   * @param {Object} division The feature (outline or centre point).
   * @param {boolean} zoom Zoom to it.
   */
  show(division, zoom) {
    const {ol} = Geoplat;
    const map = this.portal.map;
    this.current = division;
    this.ensureLayer();
    const format = new ol.GeoJSON({dataProjection: 'EPSG:4326',
      featureProjection: map.projection});
    const source = this.layer.getSource();
    source.clear();
    if (division.geometry && division.geometry.type !== 'Point') {
      source.addFeature(format.readFeature(division));
    }
    const p = division.properties || {};
    $('div-name').textContent = p.name || '';
    /** @type {HTMLButtonElement} */ ($('div-query')).disabled = !this.geometry();
    document.body.dataset.division = p.code || '';
    if (zoom && Array.isArray(p.bbox) && p.bbox.length === 4) {
      const extent = ol.transformExtent(p.bbox, 'EPSG:4326', map.projection);
      map.getLibMap().getView().fit(extent, {padding: [30, 30, 30, 30], maxZoom: 16});
    }
  }

  /** The outline layer, on the current map (the map is rebuilt when the grid changes). */
  ensureLayer() {
    const {ol} = Geoplat;
    const libMap = this.portal.map.getLibMap();
    if (this.layer && libMap.getLayers().getArray().includes(this.layer)) {
      return;
    }
    const features = this.layer ? this.layer.getSource().getFeatures() : [];
    this.layer = new ol.VectorLayer({source: new ol.VectorSource(), zIndex: 80,
      style: new ol.Style({stroke: new ol.Stroke({color: '#c62828', width: 2.5,
        lineDash: [8, 4]}), fill: new ol.Fill({color: 'rgba(198, 40, 40, 0.04)'})}),
      properties: {geoplat: 'division'}});
    libMap.addLayer(this.layer);
    if (features.length && this.current) {
      this.show(this.current, false);
    }
  }

  /** The map was rebuilt (grid change): the outline goes onto the new one. */
  attach() {
    if (this.current) {
      this.layer = null;
      this.ensureLayer();
      this.show(this.current, false);
    }
  }

  /** @return {Object|null} The picked division's geometry (GeoJSON, CRS84), if outlined. */
  geometry() {
    const g = this.current && this.current.geometry;
    return g && g.type !== 'Point' ? g : null;
  }

  clear() {
    this.current = null;
    /** @type {HTMLButtonElement} */ ($('div-query')).disabled = true;
    $('div-name').textContent = '';
    document.body.dataset.division = '';
    if (this.layer) {
      this.layer.getSource().clear();
    }
  }
}
