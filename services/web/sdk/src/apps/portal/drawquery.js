/**
 * 勾绘查询 (draw-query): a rectangle, a polygon or a circle drawn on the map (OpenLayers'
 * Draw), or any area given to `runWith(geometry)` (a division's outline), asks each shown
 * feature layer for its features intersecting it: OGC API Features items with the GET filter
 * `INTERSECTS(geometry, POLYGON(...))` (pygeoapi 0.21's text filter, lon/lat, `filter-crs`
 * CRS84), paged to the end up to MAX_FEATURES a layer. They are listed per layer (a row
 * highlights and zooms to its feature), drawn on the map, and counted: their ellipsoidal
 * area (m², 公顷, 亩) and length on CGCS2000 (./geodesic.js), sums and averages of the numeric
 * fields of the layer's queryables grouped by a chosen field. A layer's selection downloads as
 * GeoJSON or CSV (WKT geometry, formulas disarmed), made in the browser, or, for a signed-in
 * user and a layer of this node, as GeoPackage or zipped Shapefile written by the node's
 * process `extract` (an asynchronous job; its progress shows). Fields the node hides from the caller never
 * come back from it, so they are in none of these.
 */
/* global Geoplat */
import {$, addTexts, asText, el, t} from './dom.js';
import {fieldsOf} from './features.js';
import {formatArea, formatLength} from './measure.js';
import {circlePolygon, intersectsFilter, rounded, statistics, toCsv, toGeoJson} from
  './selection.js';
import {distance} from './geodesic.js';

const PAGE = 500;
const MAX_FEATURES = 5000;  // a layer's features at most (the list says when there are more)
const MAX_ROWS = 500;  // rows listed a layer (all are counted, drawn and exported)
const CRS84 = 'http://www.opengis.net/def/crs/OGC/1.3/CRS84';
const MAX_GET_FILTER = 6000;  // characters of a GET filter at most (a request line's limit)
const NUMERIC = new Set(['integer', 'number']);
const POLL_MS = 400;  // how often an extract job's progress is asked
// formats the node's process `extract` writes for the portal (a signed-in user, this node's
// layers): the browser makes GeoJSON and CSV itself
const EXTRACT_FORMATS = [['gpkg', 'GeoPackage'], ['shp', 'Shapefile']];

addTexts({
  zh: {drawQuery: '勾绘查询', dqBox: '矩形', dqPolygon: '多边形', dqCircle: '圆',
    dqHint: '在地图上画一个矩形、多边形或圆，查询其中可见图层的要素',
    dqNoLayers: '请先打开要查询的图层', dqCount: '{n} 个要素', dqCapped: '只取前 {n} 个',
    dqListed: '列出前 {n} 个', dqGroupBy: '分组字段', dqNone: '（不分组）', dqGroup: '分组',
    dqSum: '合计', dqAvg: '平均', dqCountCol: '个数', dqExport: '导出', dqTotal: '合计',
    dqExtracting: '正在提取 {p}%', dqExtracted: '已提取 {n} 个要素', dqExtractFailed: '提取失败'},
  en: {drawQuery: 'Draw query', dqBox: 'Rectangle', dqPolygon: 'Polygon', dqCircle: 'Circle',
    dqHint: 'Draw a rectangle, a polygon or a circle on the map to query the shown layers',
    dqNoLayers: 'Show a layer to query first', dqCount: '{n} features',
    dqCapped: 'the first {n} only', dqListed: 'the first {n} listed', dqGroupBy: 'Group by',
    dqNone: '(no grouping)', dqGroup: 'Group', dqSum: 'sum', dqAvg: 'mean',
    dqCountCol: 'Count', dqExport: 'Export', dqTotal: 'Total',
    dqExtracting: 'Extracting {p}%', dqExtracted: '{n} features extracted',
    dqExtractFailed: 'Extraction failed'},
});

/**
 * @param {Object} queryables A queryables document.
 * @return {string} The primary geometry's property (pygeoapi: `geometry`).
 */
function geometryProperty(queryables) {
  const props = (queryables && queryables.properties) || {};
  const found = Object.entries(props).find(([, p]) => p && (p['x-ogc-role'] ===
    'primary-geometry' || String(p.format || '').startsWith('geometry')));
  return found ? found[0] : 'geometry';
}

/**
 * Downloads a text as a file (a Blob URL, revoked after).
 * @param {string} text The content.
 * @param {string} name The file's name.
 * @param {string} type The media type.
 */
function download(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], {type}));
  const a = /** @type {HTMLAnchorElement} */ (el('a'));
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

const button = (id, text, cls) => {
  const b = /** @type {HTMLButtonElement} */ (el('button', text, cls));
  b.type = 'button';
  if (id) {
    b.id = id;
  }
  return b;
};

export default class DrawQuery {
  /** @param {Object} portal The portal. */
  constructor(portal) {
    this.portal = portal;
    this.mode = null;
    this.draw = null;
    this.seq = 0;
    /** @type {Array<{entry: Object, features: Array<Object>, fields: Array<Object>,
     *   matched: number, groupBy: string}>} */
    this.results = [];
    this.lastGeometry = null;
    this.libMap = null;
    this.build();
    // a measuring tool ends the drawing one
    for (const id of ['measure-line', 'measure-area', 'pick-point']) {
      $(id).addEventListener('click', () => this.stop());
    }
  }

  /** The panel (in the side bar) and the map tool's button. */
  build() {
    const open = button('dq-open', t('drawQuery'));
    open.dataset.i18n = 'drawQuery';
    open.setAttribute('aria-pressed', 'false');
    open.addEventListener('click', () => this.togglePanel());
    const tools = document.querySelector('#map .tools');
    tools.insertBefore(open, $('share'));
    const panel = el('section');
    panel.id = 'dq-panel';
    panel.hidden = true;
    panel.setAttribute('aria-label', 'draw query');
    const h2 = el('h2', t('drawQuery'));
    h2.dataset.i18n = 'drawQuery';
    const row = el('div', undefined, 'dq-tools');
    for (const [mode, name] of [['box', 'dqBox'], ['polygon', 'dqPolygon'],
      ['circle', 'dqCircle']]) {
      const b = button(`dq-${mode}`, t(name));
      b.dataset.i18n = name;
      b.setAttribute('aria-pressed', 'false');
      b.addEventListener('click', () => this.toggle(mode));
      row.append(b);
    }
    const clear = button('dq-clear', t('clear'));
    clear.dataset.i18n = 'clear';
    clear.addEventListener('click', () => this.clear());
    row.append(clear);
    const hint = el('p', t('dqHint'), 'muted');
    hint.dataset.i18n = 'dqHint';
    const out = el('div');
    out.id = 'dq-results';
    panel.append(h2, row, hint, out);
    const side = $('side');
    side.insertBefore(panel, $('status').nextSibling);
    const style = el('style', `#dq-panel { border: 1px solid #0b4f9c; border-radius: 4px;
  padding: 4px 6px; margin: 6px 0; }
#dq-panel .dq-tools { display: flex; flex-wrap: wrap; gap: 4px; }
#dq-panel button[aria-pressed="true"] { background: #f9a825; }
#dq-results section { border-top: 1px solid #ddd; margin-top: 6px; }
#dq-results h3 { font-size: 14px; margin: 4px 0; overflow-wrap: anywhere; }
#dq-results ol { max-height: 240px; overflow-y: auto; padding-left: 22px; margin: 4px 0;
  font-size: 12px; }
#dq-results li { cursor: pointer; overflow-wrap: anywhere; }
#dq-results li.selected { background: #fff3cd; }
#dq-results table { border-collapse: collapse; font-size: 12px; margin: 4px 0; }
#dq-results th, #dq-results td { border: 1px solid #ddd; padding: 1px 4px; text-align: right; }
#dq-results th:first-child, #dq-results td:first-child { text-align: left; }
#dq-results .dq-stats { font-size: 12px; margin: 2px 0; }`);
    document.head.append(style);
  }

  togglePanel() {
    const panel = $('dq-panel');
    panel.hidden = !panel.hidden;
    $('dq-open').setAttribute('aria-pressed', String(!panel.hidden));
    if (panel.hidden) {
      this.stop();
    }
  }

  /** @return {boolean} Whether a drawing tool is on (map clicks then draw, not identify). */
  active() {
    return this.mode !== null;
  }

  /** The result layers on the portal's current map (it is rebuilt when the grid changes). */
  layers() {
    const {ol} = Geoplat;
    const lib = this.portal.map.getLibMap();
    if (this.libMap !== lib) {
      this.libMap = lib;
      this.drawnSource = new ol.VectorSource();
      this.foundSource = new ol.VectorSource();
      lib.addLayer(new ol.VectorLayer({source: this.foundSource, zIndex: 85,
        properties: {geoplat: 'draw-query'}, style: new ol.Style({
          stroke: new ol.Stroke({color: '#00b8d4', width: 2.5}),
          fill: new ol.Fill({color: 'rgba(0, 184, 212, 0.25)'}),
          image: new ol.CircleStyle({radius: 6, fill: new ol.Fill({color: '#00b8d4'})})})}));
      lib.addLayer(new ol.VectorLayer({source: this.drawnSource, zIndex: 86,
        properties: {geoplat: 'draw-query-area'}, style: new ol.Style({
          stroke: new ol.Stroke({color: '#0b4f9c', width: 2, lineDash: [8, 6]}),
          fill: new ol.Fill({color: 'rgba(11, 79, 156, 0.06)'})})}));
      if (this.lastGeometry) {
        this.showArea(this.lastGeometry);
        this.showFound();
      }
    }
  }

  /** @param {'box'|'polygon'|'circle'} mode A drawing tool: on, or off if it was on. */
  toggle(mode) {
    const on = this.mode !== mode;
    this.stop();
    if (on) {
      this.start(mode);
    }
  }

  /** @param {'box'|'polygon'|'circle'} mode The tool. */
  start(mode) {
    const {ol} = Geoplat;
    this.portal.measure.stop();
    this.layers();
    this.mode = mode;
    $(`dq-${mode}`).setAttribute('aria-pressed', 'true');
    const options = mode === 'box' ? {type: 'Circle', geometryFunction: ol.createBox()}
      : {type: mode === 'circle' ? 'Circle' : 'Polygon'};
    this.draw = new ol.Draw({source: undefined, ...options});
    this.draw.on('drawend', (evt) => {
      const geometry = this.fromDrawn(evt.feature.getGeometry());
      // one area at a time: the tool stays on for the next
      this.runWith(geometry).catch((err) => this.portal.fail(err));
    });
    this.portal.map.getLibMap().addInteraction(this.draw);
  }

  stop() {
    if (this.draw) {
      this.draw.abortDrawing();
      if (this.libMap) {
        this.libMap.removeInteraction(this.draw);
      }
      this.draw = null;
    }
    this.mode = null;
    document.querySelectorAll('#dq-panel .dq-tools button[aria-pressed]').forEach((b) =>
      b.setAttribute('aria-pressed', 'false'));
  }

  /** Forgets the map (the portal builds a new one). */
  detach() {
    this.stop();
    this.libMap = null;
  }

  /**
   * A drawn geometry (map projection) as GeoJSON lon/lat: a circle becomes a polygon of
   * points at its radius on the ellipsoid (the radius: to the point east of the centre on the
   * drawn circle).
   * @param {Object} geom The OpenLayers geometry.
   * @return {{type: string, coordinates: Array}} GeoJSON.
   */
  fromDrawn(geom) {
    const {ol} = Geoplat;
    const proj = this.portal.map.projection;
    if (geom.getType() === 'Circle') {
      const c = geom.getCenter();
      const centre = ol.toLonLat(c, proj);
      const edge = ol.toLonLat([c[0] + geom.getRadius(), c[1]], proj);
      this.lastCircle = {centre, radius: distance(centre[0], centre[1], edge[0], edge[1])};
      return circlePolygon(centre, this.lastCircle.radius);
    }
    const format = new ol.GeoJSON({dataProjection: 'EPSG:4326', featureProjection: proj});
    return format.writeGeometryObject(geom);
  }

  /** @param {Object} geometry GeoJSON lon/lat: drawn as the query's area. */
  showArea(geometry) {
    const {ol} = Geoplat;
    const format = new ol.GeoJSON({dataProjection: 'EPSG:4326',
      featureProjection: this.portal.map.projection});
    this.drawnSource.clear();
    this.drawnSource.addFeature(new ol.Feature(format.readGeometry(geometry)));
  }

  showFound() {
    const {ol} = Geoplat;
    const format = new ol.GeoJSON({dataProjection: 'EPSG:4326',
      featureProjection: this.portal.map.projection});
    this.foundSource.clear();
    for (const r of this.results) {
      this.foundSource.addFeatures(format.readFeatures({type: 'FeatureCollection',
        features: r.features.filter((f) => f && f.geometry)}));
    }
  }

  clear() {
    this.seq++;
    this.results = [];
    this.lastGeometry = null;
    if (this.libMap) {
      this.drawnSource.clear();
      this.foundSource.clear();
    }
    $('dq-results').replaceChildren();
    delete $('dq-panel').dataset.query;
  }

  /**
   * Queries the shown feature layers for what intersects an area.
   * @param {{type: string, coordinates: Array}} geometry A Polygon or MultiPolygon, lon/lat
   *   (GeoJSON geometry; a Feature's geometry is taken).
   * @return {Promise<Array<{layer: string, ids: Array<string>, matched: number}>>} Per
   *   layer, the ids found.
   */
  async runWith(geometry) {
    const geom = geometry && geometry.type === 'Feature' ? geometry.geometry : geometry;
    if (!geom || !['Polygon', 'MultiPolygon'].includes(geom.type)) {
      throw new TypeError('a draw query needs a Polygon or MultiPolygon');
    }
    const panel = $('dq-panel');
    if (panel.hidden) {
      this.togglePanel();
    }
    const seq = ++this.seq;
    this.layers();
    this.lastGeometry = rounded(geom);
    this.showArea(this.lastGeometry);
    panel.dataset.query = 'running';
    const entries = this.portal.layers.queryable();
    if (!entries.length) {
      $('dq-results').replaceChildren(el('p', t('dqNoLayers'), 'muted'));
    }
    const answers = await Promise.all(entries.map((entry) => this.queryLayer(entry,
      this.lastGeometry).catch((err) => {
      this.portal.fail(err);
      return null;
    })));
    if (seq !== this.seq) {
      return [];
    }
    this.results = answers.filter(Boolean);
    this.showFound();
    this.render();
    panel.dataset.query = String(seq);
    return this.results.map((r) => ({layer: r.entry.id, ids: r.features.map((f) =>
      asText(f.id)), matched: r.matched}));
  }

  /**
   * Every feature of a layer intersecting the area (paged, up to MAX_FEATURES).
   * @param {Object} entry The layer.
   * @param {Object} geometry The area (rounded).
   * @return {Promise<Object>} The layer's result.
   */
  async queryLayer(entry, geometry) {
    const queryables = await this.portal.queryables(entry);
    const property = geometryProperty(queryables);
    const filter = intersectsFilter(property, geometry);
    // a long outline (a division's) does not fit in a URL: the same filter as CQL2-JSON, POSTed
    const post = filter.length > MAX_GET_FILTER ? JSON.stringify({op: 's_intersects',
      args: [{property}, geometry]}) : null;
    this.lastMethod = post ? 'POST' : 'GET';
    const features = [];
    let matched;
    while (features.length < MAX_FEATURES) {
      const limit = Math.min(PAGE, MAX_FEATURES - features.length);
      const paging = {limit, offset: features.length, f: 'json'};
      const page = post ? await this.postJson(entry, paging, post)
        : await this.portal.layerJson(entry, '/items', {filter, 'filter-lang': 'cql-text',
          'filter-crs': CRS84, ...paging});
      const got = Array.isArray(page.features) ? page.features : [];
      if (matched === undefined && Number.isInteger(page.numberMatched)) {
        matched = page.numberMatched;
      }
      features.push(...got);
      if (got.length < limit || (matched !== undefined && features.length >= matched)) {
        break;
      }
    }
    const fields = fieldsOf(queryables).filter((f) => !f.id);
    return {entry, features, fields, matched: matched ?? features.length, groupBy: ''};
  }

  /**
   * POSTs a CQL2-JSON query of a layer's items as the portal's GETs go (this node's: the key
   * and the user's cookie; another node's: the browser key).
   * @param {Object} entry The layer.
   * @param {Object} params Query parameters.
   * @param {string} body The filter.
   * @return {Promise<Object>} The page.
   */
  async postJson(entry, params, body) {
    const {portal} = this;
    const own = !entry.node || entry.node === portal.node;
    const path = `/ogc/collections/${encodeURIComponent(entry.collection || entry.id)}/items`;
    const url = Geoplat.nodeUrl(own ? portal.node : entry.node, path, params,
      own && !portal.user ? undefined : portal.key);
    const response = await fetch(url, {method: 'POST', credentials: 'same-origin', body,
      headers: {'Content-Type': 'application/query-cql-json', Accept: 'application/geo+json'}});
    if (!response.ok) {
      throw await Geoplat.problemFromResponse(response, url);
    }
    return response.json();
  }

  /**
   * The statistics of a layer's result (its numeric queryables, grouped as chosen).
   * @param {Object} r The layer's result.
   * @return {ReturnType<typeof statistics>} The figures.
   */
  stats(r) {
    return statistics(r.features, {groupBy: r.groupBy || undefined,
      numeric: r.fields.filter((f) => NUMERIC.has(f.type)).map((f) => f.name)});
  }

  /**
   * A layer's selection as a file.
   * @param {string} layer The layer's id.
   * @param {'geojson'|'csv'} kind The format.
   * @return {string} The file's text (also downloaded).
   */
  exportLayer(layer, kind) {
    const r = this.results.find((x) => x.entry.id === layer);
    if (!r) {
      return '';
    }
    const names = r.fields.length ? r.fields.map((f) => f.name)
      : [...new Set(r.features.flatMap((f) => Object.keys(f.properties || {})))];
    const text = kind === 'csv' ? '\ufeff' + toCsv(r.features, names) : toGeoJson(r.features);
    download(text, `${layer}.${kind === 'csv' ? 'csv' : 'geojson'}`,
      kind === 'csv' ? 'text/csv;charset=utf-8' : 'application/geo+json');
    return text;
  }

  /**
   * @param {Object} entry A layer.
   * @return {boolean} Whether the node's `extract` can write it for this user: a signed-in
   *   user (the node's cookie; processes never run for the page's browser key) and a layer of
   *   this node (another node's runs its own processes, for its own sign-in).
   */
  canExtract(entry) {
    return Boolean(this.portal.user) && (!entry.node || entry.node === this.portal.node);
  }

  /**
   * Runs the node's process `extract` for a layer within the query's area (asynchronously:
   * the job's progress shows in `status`), then downloads the file it wrote.
   * @param {Object} entry The layer.
   * @param {'gpkg'|'shp'} format The file format.
   * @param {HTMLElement} status Where the progress shows.
   * @param {HTMLElement} section The layer's section (`data-extract`: running, the job's id
   *   when done, failed).
   * @return {Promise<string>} The downloaded file's path on the node.
   */
  async extractLayer(entry, format, status, section) {
    if (!this.lastGeometry) {
      throw new Error('no area to extract');
    }
    section.dataset.extract = 'running';
    status.textContent = t('dqExtracting', {p: 0});
    const collection = entry.collection || entry.id;
    const response = await fetch('/ogc/processes/extract/execution', {method: 'POST',
      credentials: 'same-origin', headers: {'Content-Type': 'application/json',
        Accept: 'application/json', Prefer: 'respond-async'},
      body: JSON.stringify({inputs: {layers: [collection], geometry: this.lastGeometry,
        format}})});
    if (!response.ok) {
      throw await Geoplat.problemFromResponse(response, response.url);
    }
    const location = response.headers.get('Location') || '';
    const id = location.replace(/\/+$/, '').split('/').pop();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
      throw new Error('the node named no job');
    }
    const jobPath = `/ogc/jobs/${encodeURIComponent(id)}`;
    const read = async (path) => {
      const r = await fetch(`${path}?f=json`, {credentials: 'same-origin',
        headers: {Accept: 'application/json'}});
      if (!r.ok) {
        throw await Geoplat.problemFromResponse(r, r.url);
      }
      return r.json();
    };
    for (;;) {
      const job = await read(jobPath);
      if (job.status === 'successful') {
        break;
      }
      if (!['accepted', 'running'].includes(job.status)) {
        throw new Error(`extract: ${asText(job.message || job.status)}`);
      }
      status.textContent = t('dqExtracting', {p: Number(job.progress) || 0});
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    const result = await read(`${jobPath}/results`);
    const file = (result.files || [])[0];
    if (!file) {
      throw new Error('extract wrote no file');
    }
    // the file's path on this node (its link is absolute, in the node's public address)
    const path = new URL(file.href, location || window.location.href).pathname;
    const a = /** @type {HTMLAnchorElement} */ (el('a'));
    a.href = path;
    a.download = file.name;
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    const count = (result.layers || []).reduce((n, l) => n + (Number(l.features) || 0), 0);
    status.textContent = t('dqExtracted', {n: count});
    section.dataset.extract = id;
    return path;
  }

  render() {
    const out = $('dq-results');
    out.replaceChildren();
    if (this.results.length > 1) {
      const all = this.results.map((r) => this.stats(r));
      const area = all.reduce((s, x) => s + x.area, 0);
      const p = el('p', `${t('dqTotal')}: ${t('dqCount', {n: all.reduce((s, x) => s + x.count,
        0)})} · ${t('area')} ${formatArea(area)}`, 'dq-stats');
      p.id = 'dq-total';
      out.append(p);
    }
    for (const r of this.results) {
      out.append(this.renderLayer(r));
    }
  }

  /**
   * @param {Object} r A layer's result.
   * @return {HTMLElement} Its section.
   */
  renderLayer(r) {
    const s = this.stats(r);
    const section = el('section');
    section.dataset.layer = r.entry.id;
    section.dataset.count = String(s.count);
    section.dataset.matched = String(r.matched);
    section.dataset.squareMetres = String(s.area);
    section.dataset.metres = String(s.length);
    const swatch = el('span', '■');
    swatch.style.color = r.entry.color;
    const h3 = el('h3');
    h3.append(swatch, ` ${r.entry.title} · ${t('dqCount', {n: s.count})}` +
      (r.matched > s.count ? ` (${t('dqCapped', {n: s.count})} / ${r.matched})` : ''));
    section.append(h3);
    if (s.area > 0) {
      section.append(el('p', `${t('area')}: ${formatArea(s.area)}`, 'dq-stats area'));
    }
    if (s.length > 0) {
      section.append(el('p', `${t('length')}: ${formatLength(s.length)}`, 'dq-stats length'));
    }
    // group by a field: count, area, and the numeric fields' sums and means
    const numeric = r.fields.filter((f) => NUMERIC.has(f.type));
    const groupBy = /** @type {HTMLSelectElement} */ (el('select'));
    groupBy.className = 'dq-groupby';
    groupBy.setAttribute('aria-label', t('dqGroupBy'));
    const none = /** @type {HTMLOptionElement} */ (el('option', t('dqNone')));
    none.value = '';
    groupBy.append(none, ...r.fields.map((f) => {
      const o = /** @type {HTMLOptionElement} */ (el('option', f.title));
      o.value = f.name;
      return o;
    }));
    groupBy.value = r.groupBy;
    groupBy.addEventListener('change', () => {
      r.groupBy = groupBy.value;
      section.replaceWith(this.renderLayer(r));
    });
    const label = el('label', `${t('dqGroupBy')} `);
    label.append(groupBy);
    section.append(label);
    const table = el('table');
    table.className = 'dq-groups';
    const head = el('tr');
    head.append(el('th', t('dqGroup')), el('th', t('dqCountCol')), el('th', `${t('area')} m²`),
      ...numeric.flatMap((f) => [el('th', `${f.title} ${t('dqSum')}`),
        el('th', `${f.title} ${t('dqAvg')}`)]));
    const thead = el('thead');
    thead.append(head);
    const tbody = el('tbody');
    const line = (key, name, g) => {
      const tr = el('tr');
      tr.dataset.group = key;
      tr.append(el('td', name), el('td', String(g.count)), el('td', g.area.toFixed(1)),
        ...numeric.flatMap((f) => {
          const sum = el('td', String(Number(g.sums[f.name].toFixed(6))));
          sum.dataset.field = f.name;
          sum.dataset.sum = String(g.sums[f.name]);
          const avg = g.averages[f.name];
          return [sum, el('td', avg === null ? '' : String(Number(avg.toFixed(6))))];
        }));
      return tr;
    };
    if (r.groupBy) {
      for (const g of s.groups) {
        tbody.append(line(g.key, g.key, g));
      }
    }
    const total = line('*', t('dqTotal'), s);
    total.className = 'total';
    tbody.append(total);
    table.append(thead, tbody);
    section.append(table);
    const exports = el('div', `${t('dqExport')}: `);
    for (const [kind, name] of [['geojson', 'GeoJSON'], ['csv', 'CSV']]) {
      const b = button('', name, `dq-export-${kind}`);
      b.addEventListener('click', () => this.exportLayer(r.entry.id, kind));
      exports.append(b);
    }
    if (this.canExtract(r.entry)) {
      const status = el('span', '', 'dq-extract-status muted');
      status.setAttribute('role', 'status');
      for (const [fmt, name] of EXTRACT_FORMATS) {
        const b = button('', name, `dq-export-${fmt}`);
        b.addEventListener('click', () => this.extractLayer(r.entry, fmt, status, section)
          .catch((err) => {
            status.textContent = t('dqExtractFailed');
            section.dataset.extract = 'failed';
            this.portal.fail(err);
          }));
        exports.append(b);
      }
      exports.append(status);
    }
    section.append(exports);
    const labelField = r.fields.find((f) => f.type === 'string');
    const list = el('ol');
    for (const feature of r.features.slice(0, MAX_ROWS)) {
      const id = asText(feature.id);
      const name = labelField ? asText((feature.properties || {})[labelField.name]) : '';
      const li = el('li', name && name !== id ? `${id} · ${name}` : id);
      li.dataset.id = id;
      li.tabIndex = 0;
      const pick = () => {
        list.querySelectorAll('li.selected').forEach((x) => x.classList.remove('selected'));
        li.classList.add('selected');
        this.portal.highlight([feature], true);
      };
      li.addEventListener('click', pick);
      li.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') {
          pick();
        }
      });
      list.append(li);
    }
    section.append(list);
    if (r.features.length > MAX_ROWS) {
      section.append(el('p', t('dqListed', {n: MAX_ROWS}), 'muted'));
    }
    return section;
  }
}
