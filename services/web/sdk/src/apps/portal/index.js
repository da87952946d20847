/**
 * The portal (门户, issue 16) at every node's `/`: an application of the SDK. Built by
 * build.mjs into dist/portal.js, served as /sdk/portal.js; it runs after /sdk/geoplat.js and
 * uses its global `Geoplat` (the Map, getJson, nodeUrl, the OpenLayers parts), so the page
 * loads one map stack.
 *
 * Reads its configuration (key, node, title, extent) from `<script type="application/json"
 * id="portal-config">`. Every request carries the node's browser key, and the signed-in
 * user's cookie (same origin), so the node's access rules and quotas decide what it shows.
 * Every text from the APIs goes into the DOM as text. `window.portal` and `window.map` are
 * there for the browser tests and for anyone curious.
 */
/* global Geoplat */
import {renderAccount, restoreSignedOutView} from './account.js';
import Annotate from './annotate.js';
import {$, applyLanguage, el, showError, t, ui} from './dom.js';
import DivisionNav from './divisions.js';
import DrawQuery from './drawquery.js';
import {AttributeTable, Identify} from './features.js';
import LayerControl from './layers.js';
import Measure from './measure.js';
import PrintSheet from './print.js';
import {readView, writeView} from './share.js';

const SUGGEST_DELAY_MS = 200;

class Portal {
  constructor(config) {
    this.config = config;
    this.key = config.key || '';
    this.node = config.node;
    const ext = Array.isArray(config.extent) && config.extent.length === 4
      ? config.extent : [73, 18, 135, 54];
    this.fallback = {center: [(ext[0] + ext[2]) / 2, (ext[1] + ext[3]) / 2],
      zoom: zoomForExtent(ext), grid: 'c', basemap: 'vec', labels: true, layers: []};
    this.view = readView(location.hash, this.fallback);
    this.grid = this.view.grid;
    this.queryables_ = new Map();
    this.layers = new LayerControl(this);
    this.identify = new Identify(this);
    this.table = new AttributeTable(this);
    this.divisions = new DivisionNav(this);
    this.drawQuery = new DrawQuery(this);
    this.printSheet = new PrintSheet(this);
    this.suggestions = [];
    this.suggestSeq = 0;
    this.map = null;
    this.restoring = true;
    this.user = null;
  }

  /**
   * GET a path of the node as JSON, with the key (and the user's cookie: same origin).
   * @param {string} path The path.
   * @param {Object} [params] Query parameters.
   * @return {Promise<any>} The answer.
   */
  getJson(path, params = {}) {
    return Geoplat.getJson(Geoplat.nodeUrl(this.node, path, params,
      this.user ? this.key : undefined),
    {credentials: 'same-origin', headers: {Accept: 'application/json'}});
  }

  /**
   * Who is looking: the signed-in user (the node's cookie, `/auth/me`), or null. The data
   * requests of a signed-in user carry the cookie's token and the key; an anonymous user's
   * carry no key: the demo browser key acts for its owner (a registered user), which would
   * show anyone the `registered` layers. They are the node's own page's requests (its
   * origin), which the node lets through for what is public, as for pygeoapi's pages.
   * @return {Promise<Object|null>} The user.
   */
  async whoami() {
    try {
      const response = await fetch(new URL('/auth/me', this.node).toString(),
        {credentials: 'same-origin', headers: {Accept: 'application/json'}});
      this.user = response.ok ? await response.json() : null;
    } catch {
      this.user = null;
    }
    document.body.dataset.user = this.user ? 'signed-in' : 'anonymous';
    return this.user;
  }

  /**
   * GET `/ogc/collections/{collection}{suffix}` of a layer as JSON, from the layer's node: this
   * node's as `getJson` does, another node's (a layer of the federation listed by this node's
   * catalogue) with the browser key, which reaches public layers only.
   * @param {Object} entry A feature layer of the layer control ({id, collection?, node?}).
   * @param {string} suffix `/items`, `/queryables`, ...
   * @param {Object} [params] Query parameters.
   * @return {Promise<any>} The answer.
   */
  layerJson(entry, suffix, params = {}) {
    const path = `/ogc/collections/${encodeURIComponent(entry.collection || entry.id)}${suffix}`;
    if (!entry.node || entry.node === this.node) {
      return this.getJson(path, params);
    }
    return Geoplat.getJson(Geoplat.nodeUrl(entry.node, path, params, this.key),
      {headers: {Accept: 'application/json'}});
  }

  /**
   * @param {Object} entry A feature layer.
   * @return {Promise<Object>} Its queryables (cached).
   */
  queryables(entry) {
    if (!this.queryables_.has(entry.id)) {
      const got = this.layerJson(entry, '/queryables', {f: 'json'});
      got.catch(() => this.queryables_.delete(entry.id));
      this.queryables_.set(entry.id, got);
    }
    return this.queryables_.get(entry.id);
  }

  fail(err) {
    showError(err);
  }

  async start() {
    applyLanguage();
    this.bindControls();
    this.buildMap();
    try {
      await this.whoami();
      renderAccount(this);
      await this.layers.load(this.view.layers);
    } catch (err) {
      this.fail(err);
    }
    await this.divisions.load().catch((err) => this.fail(err));
    await this.annotate.load().catch((err) => this.fail(err)); // whatever the layers did
    this.restoring = false;
    this.saveView();
    document.body.dataset.ready = 'true';
  }

  /** (Re)builds the map of the current grid at the current view. */
  buildMap() {
    if (this.map) {
      this.layers.detach();
      this.measure.stop();
      this.drawQuery.detach();
      this.map.destroy();
    }
    const v = this.view;
    const map = new Geoplat.Map('map', {key: this.key, node: this.node,
      crs: v.grid === 'w' ? 'EPSG:3857' : 'EPSG:4490', basemap: v.basemap, labels: v.labels,
      center: v.center, zoom: v.zoom, maxZoom: 20});
    this.map = map;
    window.map = map;
    this.measure = this.measure || new Measure(this);
    this.annotate = this.annotate || new Annotate(this);
    this.annotate.attach();
    this.highlightLayer = new Geoplat.ol.VectorLayer({source: new Geoplat.ol.VectorSource(),
      zIndex: 90, style: new Geoplat.ol.Style({
        stroke: new Geoplat.ol.Stroke({color: '#ffea00', width: 4}),
        fill: new Geoplat.ol.Fill({color: 'rgba(255, 234, 0, 0.3)'}),
        image: new Geoplat.ol.CircleStyle({radius: 9,
          stroke: new Geoplat.ol.Stroke({color: '#ffea00', width: 4})})}),
      properties: {geoplat: 'highlight'}});
    map.getLibMap().addLayer(this.highlightLayer);
    map.on('error', (e) => this.fail(e.error || e));
    map.on('moveend', () => this.saveView());
    map.on('click', (e) => {
      if (!this.measure.active() && !this.drawQuery.active() && !this.annotate.busy()) {
        this.identify.at(e);
      }
    });
    map.getLibMap().on('pointermove', (evt) => {
      const [lon, lat] = Geoplat.ol.toLonLat(evt.coordinate, map.projection);
      $('readout').textContent = `${lon.toFixed(6)}, ${lat.toFixed(6)}`;
    });
    map.ready.then(() => {
      const ov = new Geoplat.ol.OverviewMap({collapsed: true,
        layers: [new Geoplat.ol.TileLayer({source: map.basemap.source('vec')})]});
      map.getLibMap().addControl(ov);
    }).catch(() => {});
    this.layers.redraw();
    this.divisions.attach();
  }

  bindControls() {
    $('lang').addEventListener('click', () => {
      ui.lang = ui.lang === 'en' ? 'zh' : 'en';
      localStorage.setItem('geoplat.portal.lang', ui.lang);
      applyLanguage();
      this.layers.render();
    });
    document.querySelectorAll('input[name=basemap]').forEach((input) => {
      const radio = /** @type {HTMLInputElement} */ (input);
      radio.checked = radio.value === this.view.basemap;
      radio.addEventListener('change', () => {
        if (radio.checked) {
          this.view.basemap = /** @type {any} */ (radio.value);
          this.map.setBasemap(this.view.basemap).catch((err) => this.fail(err));
          this.saveView();
        }
      });
    });
    const labels = /** @type {HTMLInputElement} */ ($('labels'));
    labels.checked = this.view.labels;
    labels.addEventListener('change', () => {
      this.view.labels = labels.checked;
      this.map.setLabels(labels.checked).catch((err) => this.fail(err));
      this.saveView();
    });
    document.querySelectorAll('input[name=grid]').forEach((input) => {
      const radio = /** @type {HTMLInputElement} */ (input);
      radio.checked = radio.value === this.grid;
      radio.addEventListener('change', () => {
        if (radio.checked && radio.value !== this.grid) {
          this.captureView();
          this.grid = /** @type {any} */ (radio.value);
          this.view.grid = this.grid;
          this.buildMap();
          this.saveView();
        }
      });
    });
    $('share').addEventListener('click', () => {
      this.saveView();
      const url = location.href;
      const done = () => {
        $('status').textContent = t('copied') + url;
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(url).then(done, done);
      } else {
        done();
      }
    });
    this.bindSearch();
  }

  /** The map's view into this.view (centre, zoom; the rest is kept as it changes). */
  captureView() {
    if (this.map) {
      this.view.center = this.map.getCenter();
      this.view.zoom = this.map.getZoom();
    }
    this.view.layers = this.layers.shown();
  }

  /** The view into the URL (replacing the entry: panning fills no history). */
  saveView() {
    if (this.restoring || !this.map) {
      return;
    }
    this.captureView();
    const hash = writeView(this.view);
    if (hash !== location.hash) {
      history.replaceState(null, '', hash);
    }
  }

  /**
   * Highlights features (GeoJSON, CRS84) and, when asked, zooms to them.
   * @param {Array<Object>} features The features.
   * @param {boolean} zoom Zoom to them.
   */
  highlight(features, zoom) {
    const format = new Geoplat.ol.GeoJSON({dataProjection: 'EPSG:4326',
      featureProjection: this.map.projection});
    const source = this.highlightLayer.getSource();
    source.clear();
    const read = format.readFeatures({type: 'FeatureCollection', features});
    source.addFeatures(read);
    this.highlighted = features.map((f) => f.id);
    if (zoom && read.length) {
      const extent = source.getExtent();
      this.map.getLibMap().getView().fit(extent, {maxZoom: 18, padding: [40, 40, 40, 40],
        duration: 300});
    }
  }

  bindSearch() {
    const q = /** @type {HTMLInputElement} */ ($('q'));
    let timer = 0;
    q.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.suggest(q.value), SUGGEST_DELAY_MS);
    });
    q.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        clearTimeout(timer);
        this.pickFirst(q.value);
      } else if (e.key === 'Escape') {
        this.closeSuggest();
      }
    });
  }

  /**
   * @param {string} text What was typed.
   * @return {Promise<Array<Object>>} The suggestions shown.
   */
  async suggest(text) {
    const seq = ++this.suggestSeq;
    const value = text.trim();
    if (!value || value.length > 100) {
      this.closeSuggest();
      return [];
    }
    let answer;
    try {
      answer = await this.getJson('/api/places/suggest', {q: value});
    } catch (err) {
      this.fail(err);
      return [];
    }
    if (seq !== this.suggestSeq) {
      return this.suggestions;
    }
    this.suggestions = (answer.features || []).filter((f) => f && f.geometry);
    const list = $('suggest');
    list.replaceChildren(...this.suggestions.map((f) => {
      const p = f.properties || {};
      const li = el('li', p.name || p.address || '');
      li.setAttribute('role', 'option');
      if (p.address && p.address !== p.name) {
        li.append(el('span', p.address, 'addr'));
      }
      li.addEventListener('click', () => this.go(f));
      return li;
    }));
    list.hidden = !this.suggestions.length;
    $('q').setAttribute('aria-expanded', String(!list.hidden));
    return this.suggestions;
  }

  closeSuggest() {
    $('suggest').hidden = true;
    $('q').setAttribute('aria-expanded', 'false');
  }

  /** Enter: the first suggestion (asked now if none is shown), else the first search hit. */
  async pickFirst(text) {
    const value = text.trim();
    if (!value) {
      return;
    }
    let found = await this.suggest(value);
    if (!found.length) {
      try {
        const answer = await this.getJson('/api/places/search', {q: value, limit: 1});
        found = (answer.features || []).filter((f) => f && f.geometry);
      } catch (err) {
        this.fail(err);
        return;
      }
    }
    if (!found.length) {
      $('status').textContent = t('noPlace', {q: value});
      return;
    }
    this.go(found[0]);
  }

  /** @param {Object} feature A place (GeoJSON): the map centres on it and pins it. */
  go(feature) {
    this.closeSuggest();
    const format = new Geoplat.ol.GeoJSON({dataProjection: 'EPSG:4326',
      featureProjection: this.map.projection});
    const geom = format.readGeometry(feature.geometry);
    const extent = geom.getExtent();
    const centre = Geoplat.ol.toLonLat(Geoplat.ol.getExtentCenter(extent), this.map.projection);
    if (this.pin) {
      this.pin.remove();
    }
    const p = feature.properties || {};
    this.pin = this.map.addMarker({position: centre, title: String(p.name || p.address || '')});
    this.picked = {centre, name: p.name || p.address || ''};
    if (geom.getType() === 'Point') {
      this.map.setCenter(centre, Math.max(this.map.getZoom(), 16));
    } else {
      this.map.getLibMap().getView().fit(extent, {maxZoom: 17, padding: [40, 40, 40, 40]});
    }
    $('status').textContent = '';
  }
}

/**
 * @param {Array<number>} ext [minLon, minLat, maxLon, maxLat].
 * @return {number} A level at which the box fits in about 1000 px.
 */
function zoomForExtent(ext) {
  const span = Math.max(ext[2] - ext[0], (ext[3] - ext[1]) * 1.5, 1e-6);
  // level n is 0.703125 / 2^(n-1) degrees per pixel
  return Math.max(3, Math.min(14, Math.floor(1 + Math.log2(1000 * 0.703125 / span))));
}

restoreSignedOutView();
const config = JSON.parse($('portal-config').textContent);
const portal = new Portal(config);
window.portal = portal;
portal.start().catch((err) => showError(err));
