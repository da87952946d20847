/**
 * The public cadastral map page (`/cadastre`, issue 15): a reference use of the SDK. Built by
 * build.mjs into dist/cadastre.js, served as /sdk/cadastre.js; it runs after /sdk/geoplat.js
 * and uses its global `Geoplat` (the Map, its features overlay, `features`, `nodeUrl`, the
 * OpenLayers parts of `Geoplat.ol`, among them the Draw interaction).
 *
 * Configuration (key, node, the parcels and projects layers, the parcel cap) comes from
 * `<script type="application/json" id="cadastre-config">`; `?center=lon,lat&zoom=z` set the
 * first view. Parcels are drawn as features of the view from level 15 (the node's vector tiles
 * are WebMercatorQuad only, and OpenLayers cannot reproject vector tiles into the `c` grid);
 * a click, a rectangle or a polygon asks the node for the parcels it intersects (OGC API
 * Features, `POST .../items` with a CQL2-JSON `s_intersects` filter, paged by offset up to the
 * cap) and for the pre-sale projects on them (`parcel_no` in the parcels found). Every text
 * from the APIs goes into the DOM with textContent, never as HTML; fields the node returns
 * beyond the known ones (the holder fields, for a caller with the grant) are listed as text.
 */

import {el, translator} from './dom.js';
import {bindPrintEvents, mapFrame, prepareSheet, usePaper} from './printsheet.js';
/* global Geoplat */

const ol = Geoplat.ol;
const PRINT_LAYOUT = usePaper('A4', 'portrait');  // the sheet's @page and frame (186 x 130 mm)
document.querySelector('#print-sheet h1').after(mapFrame());
const MU_M2 = 10000 / 15;  // 1 亩
const PAGE = 100;  // items per request of a query
const MIN_PARCEL_ZOOM = 15;  // parcels of the view are drawn from this level
const VIEW_MAX = 3000;  // parcels drawn for one view at most
const CHUNK = 100;  // parcel numbers per projects request
// GB 50137 major classes (the parcels' land_use_code): map colours of the urban land-use map
const LAND_USE = [
  ['R', '#f6de6f', '居住用地', 'Residential'],
  ['A', '#e99ac0', '公共管理与公共服务用地', 'Public administration and services'],
  ['B', '#ef8a7a', '商业服务业设施用地', 'Commercial and business'],
  ['M', '#b98b58', '工业用地', 'Industrial'],
  ['W', '#b39ddb', '物流仓储用地', 'Logistics and warehouse'],
  ['S', '#c4c4c4', '道路与交通设施用地', 'Roads and transport'],
  ['U', '#7fb2e5', '公用设施用地', 'Utilities'],
  ['G', '#86cc86', '绿地与广场用地', 'Green space and squares'],
];
const OTHER_COLOUR = '#e0e0e0';
const PROJECT_COLOUR = '#e65100';
const HIT_COLOUR = '#1565c0';
const SKIP = new Set(['synthetic']);  // sample-data flag: the page's notice says it
const PARCEL_FIELDS = ['parcel_no', 'land_use', 'land_use_code', 'gbt21010_code',
  'gbt21010_name', 'area_m2', 'district'];
const PROJECT_FIELDS = ['project_name', 'developer', 'permit_no', 'units_for_sale',
  'units_total', 'status', 'parcel_no', 'district'];

const TEXT = {
  zh: {
    title: '地籍图查询', print: '打印', lang: 'English', toolPoint: '点选宗地',
    toolBox: '画矩形', toolPolygon: '画多边形', clear: '清除',
    hintPoint: '点击地图上的宗地，或画一个矩形或多边形，列出其中的宗地和预售项目。',
    hintBox: '在地图上单击矩形的一角，再单击它的对角。', hintPolygon: '在地图上逐点单击画多边形，双击结束。',
    zoomIn: '放大地图以显示宗地（{z} 级起）。', parcels: '宗地', projects: '商品房预售项目',
    count: '（{n}）', loading: '查询中…', error: '出错了：', found: '找到 {n} 宗宗地，{p} 个预售项目。',
    none: '这里没有宗地。', capped: '只列出前 {max} 宗（共 {n} 宗），请画一个更小的范围。',
    landUse: '用地性质', gbt: '土地利用现状分类 (GB/T 21010)', area: '面积', district: '所在区',
    mu: '亩', developer: '开发企业', permit: '预售许可证号', units: '可售 / 总套数',
    status: '销售状态', parcel: '宗地号', right_holder: '权利人', right_type: '权利类型',
    right_nature: '权利性质', legendProjects: '预售项目', legendHit: '查询结果',
    legendOther: '其他用地', notice: '合成样例数据，未经审核，不作为中国地图使用。',
    printDate: '制图日期', reviewNo: '审图号', reviewNone: '无（样例数据，未送审）',
    crs: '坐标系', scale: '比例尺',
  },
  en: {
    title: 'Cadastral map', print: 'Print', lang: '中文', toolPoint: 'Pick a parcel',
    toolBox: 'Rectangle', toolPolygon: 'Polygon', clear: 'Clear',
    hintPoint: 'Click a parcel on the map, or draw a rectangle or a polygon, to list the ' +
      'parcels in it and the pre-sale projects on them.',
    hintBox: 'Click one corner of the rectangle on the map, then the opposite corner.',
    hintPolygon: 'Click point by point on the map; double-click to finish.',
    zoomIn: 'Zoom in to see the parcels (from level {z}).', parcels: 'Parcels',
    projects: 'Pre-sale housing projects', count: '({n})', loading: 'Querying…',
    error: 'Error: ', found: '{n} parcels, {p} pre-sale projects.', none: 'No parcel here.',
    capped: 'Only the first {max} of {n} parcels are listed: draw a smaller area.',
    landUse: 'Land use', gbt: 'GB/T 21010 class', area: 'Area', district: 'District',
    mu: 'mu', developer: 'Developer', permit: 'Pre-sale permit', units: 'Units for sale / total',
    status: 'Status', parcel: 'Parcel', right_holder: 'Right holder', right_type: 'Right type',
    right_nature: 'Right nature', legendProjects: 'Pre-sale projects', legendHit: 'Query result',
    legendOther: 'Other land', notice: 'Synthetic sample data, not reviewed as a map of China.',
    printDate: 'Date', reviewNo: 'Map review no. (审图号)', reviewNone: 'none (sample data, ' +
      'not submitted for review)', crs: 'CRS', scale: 'Scale',
  },
};

/** @return {HTMLElement} The element of this id. */
const $ = (id) => document.getElementById(id);
const config = JSON.parse($('cadastre-config').textContent);
const key = config.key;
const params = new URLSearchParams(location.search);
// `?parcels=ID&projects=ID`: other layers of the node with the same fields (the page reads
// them with the same key and rights as any client would)
for (const name of ['parcels', 'projects']) {
  const id = params.get(name);
  if (id && /^[a-z][a-z0-9_]{0,62}$/.test(id)) {
    config[name] = id;
  }
}
const state = {
  lang: localStorage.getItem('geoplat.cadastre.lang') === 'en' ? 'en' : 'zh',
  tool: 'point', parcels: [], projects: [], matched: 0, queries: 0, draw: null,
  geometryProperty: 'geom', lastGeometry: null, withSession: new URL(config.node).origin ===
    location.origin, viewExtent: null, viewLoads: 0, selected: null,
};

/** A text of the UI's language, `{name}` replaced. */
const t = translator(TEXT, () => state.lang);

function showStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
}

function showError(err) {
  const detail = err && (err.detail || err.message) || String(err);
  showStatus(t('error') + detail, true);
}

function colourOf(code) {
  const row = LAND_USE.find((r) => r[0] === String(code || '').charAt(0).toUpperCase());
  return row ? row[1] : OTHER_COLOUR;
}

function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// --- styles ----------------------------------------------------------------------------------

const parcelStyles = new Map();
function parcelStyle(feature) {
  const colour = colourOf(feature.get('land_use_code'));
  let style = parcelStyles.get(colour);
  if (!style) {
    style = new ol.Style({fill: new ol.Fill({color: withAlpha(colour, 0.55)}),
      stroke: new ol.Stroke({color: '#8d6e63', width: 1})});
    parcelStyles.set(colour, style);
  }
  return style;
}
const hitStyle = new ol.Style({fill: new ol.Fill({color: withAlpha(HIT_COLOUR, 0.18)}),
  stroke: new ol.Stroke({color: HIT_COLOUR, width: 3})});
const hitProjectStyle = new ol.Style({fill: new ol.Fill({color: withAlpha(PROJECT_COLOUR, 0.5)}),
  stroke: new ol.Stroke({color: PROJECT_COLOUR, width: 4})});
const selectedStyle = new ol.Style({fill: new ol.Fill({color: withAlpha('#f9a825', 0.45)}),
  stroke: new ol.Stroke({color: '#f9a825', width: 5})});
const drawnStyle = new ol.Style({fill: new ol.Fill({color: 'rgba(21, 101, 192, 0.08)'}),
  stroke: new ol.Stroke({color: HIT_COLOUR, width: 2, lineDash: [8, 6]}),
  image: new ol.CircleStyle({radius: 5, fill: new ol.Fill({color: HIT_COLOUR})})});

// --- the map -----------------------------------------------------------------------------------

const firstCenter = (params.get('center') || '').split(',').map(Number);
const firstZoom = Number(params.get('zoom'));
const map = new Geoplat.Map('map', {key, node: config.node, zoom: Number.isInteger(firstZoom) &&
  firstZoom >= 1 && firstZoom <= 20 ? firstZoom : MIN_PARCEL_ZOOM,
center: firstCenter.length === 2 && firstCenter.every(Number.isFinite) &&
  Math.abs(firstCenter[0]) <= 180 && Math.abs(firstCenter[1]) <= 90 ? firstCenter
  : [120.19, 30.27]});
const olMap = map.getLibMap();
const format = new ol.GeoJSON({dataProjection: 'EPSG:4326', featureProjection: map.projection});
const parcelSource = new ol.VectorSource();
const hitSource = new ol.VectorSource();
const drawSource = new ol.VectorSource();
olMap.addLayer(new ol.VectorLayer({source: parcelSource, style: parcelStyle, zIndex: 10,
  properties: {geoplat: 'parcels'}}));
olMap.addLayer(new ol.VectorLayer({source: hitSource, zIndex: 30,
  style: (f) => f.get('selected') ? selectedStyle : f.get('kind') === 'project'
    ? hitProjectStyle : hitStyle}));
olMap.addLayer(new ol.VectorLayer({source: drawSource, style: drawnStyle, zIndex: 40}));
const projectsOverlay = config.projects ? map.addLayer({type: 'features',
  collection: config.projects, popup: 'project_name', style: {color: PROJECT_COLOUR, width: 2,
    fillColor: withAlpha(PROJECT_COLOUR, 0.35)}}) : null;
if (projectsOverlay) {
  projectsOverlay.getLibLayer().setZIndex(20);
}

/** The parcels of the view (from MIN_PARCEL_ZOOM), loaded again when the view leaves them. */
async function loadView() {
  const zoom = map.getZoom();
  $('zoom-hint').hidden = zoom >= MIN_PARCEL_ZOOM;
  if (zoom < MIN_PARCEL_ZOOM) {
    parcelSource.clear();
    state.viewExtent = null;
    $('map').dataset.parcels = '0';
    return;
  }
  const [x0, y0, x1, y1] = map.getBounds();
  const have = state.viewExtent;
  if (have && x0 >= have[0] && y0 >= have[1] && x1 <= have[2] && y1 <= have[3]) {
    return;
  }
  const dx = (x1 - x0) / 4;
  const dy = (y1 - y0) / 4;
  const bbox = [x0 - dx, y0 - dy, x1 + dx, y1 + dy].map((v) => Number(v.toFixed(7)));
  const load = ++state.viewLoads;
  try {
    const fc = await Geoplat.features(config.parcels, {bbox, key, node: config.node,
      maxFeatures: VIEW_MAX});
    if (load !== state.viewLoads) {
      return;  // the view moved on
    }
    parcelSource.clear();
    parcelSource.addFeatures(format.readFeatures({type: 'FeatureCollection',
      features: fc.features}));
    state.viewExtent = bbox;
    $('map').dataset.parcels = String(fc.features.length);
  } catch (err) {
    showError(err);
  }
}

// --- queries -----------------------------------------------------------------------------------

/** One page of a POST items query with a CQL2-JSON filter. */
async function postPage(collection, filter, offset, limit) {
  const url = Geoplat.nodeUrl(config.node,
    `/ogc/collections/${encodeURIComponent(collection)}/items`, {f: 'json', limit, offset}, key);
  const ask = (credentials) => fetch(url, {method: 'POST', credentials,
    body: JSON.stringify(filter),
    headers: {'Content-Type': 'application/query-cql-json', Accept: 'application/geo+json'}});
  let response;
  try {
    // with the node's own session cookie (same origin only): a signed-in user with the grant
    // reads the fields only the grant shows; a stale sign-in (401) falls back to the key alone
    response = await ask(state.withSession ? 'same-origin' : 'omit');
    if (response.status === 401 && state.withSession) {
      state.withSession = false;
      response = await ask('omit');
    }
  } catch (cause) {
    throw new Error(String(cause));
  }
  if (!response.ok) {
    throw await Geoplat.problemFromResponse(response, url);
  }
  return response.json();
}

/** Every feature matching `filter`, page by page, up to `max`; and how many matched. */
async function readAll(collection, filter, max) {
  const features = [];
  let matched;
  while (features.length < max) {
    const limit = Math.min(PAGE, max - features.length);
    const page = await postPage(collection, filter, features.length, limit);
    const got = Array.isArray(page.features) ? page.features : [];
    if (matched === undefined && Number.isInteger(page.numberMatched)) {
      matched = page.numberMatched;
    }
    features.push(...got);
    if (got.length < limit || (matched !== undefined && features.length >= matched)) {
      break;
    }
  }
  return {features, matched: matched ?? features.length};
}

function rounded(geometry) {
  const round = (c) => Array.isArray(c[0]) ? c.map(round) : c.map((v) => Number(v.toFixed(8)));
  return {type: geometry.type, coordinates: round(geometry.coordinates)};
}

/**
 * Lists the parcels a geometry (GeoJSON, lon/lat) intersects and the projects on them.
 * @param {{type: string, coordinates: Array}} geometry A Point or a Polygon.
 * @return {Promise<{parcels: Array<string>, projects: Array<string>, matched: number}>}
 */
async function queryGeometry(geometry) {
  const query = ++state.queries;
  document.body.dataset.query = 'running';
  showStatus(t('loading'));
  state.lastGeometry = rounded(geometry);
  const filter = {op: 's_intersects', args: [{property: state.geometryProperty},
    state.lastGeometry]};
  let parcels;
  let projects = [];
  let matched;
  try {
    ({features: parcels, matched} = await readAll(config.parcels, filter, config.maxParcels));
    const numbers = [...new Set(parcels.map((f) => f.properties && f.properties.parcel_no)
      .filter((n) => typeof n === 'string'))];
    if (config.projects) {
      for (let i = 0; i < numbers.length; i += CHUNK) {
        const chunk = numbers.slice(i, i + CHUNK);
        const inList = {op: 'in', args: [{property: 'parcel_no'}, chunk]};
        projects.push(...(await readAll(config.projects, inList, 10 * CHUNK)).features);
      }
    }
  } catch (err) {
    if (query === state.queries) {
      showError(err);
      document.body.dataset.query = 'error';
    }
    throw err;
  }
  if (query !== state.queries) {
    return null;  // a newer query took over
  }
  const byNumber = (a, b) => String(a.properties.parcel_no).localeCompare(
    String(b.properties.parcel_no));
  parcels.sort(byNumber);
  projects = projects.filter((f) => f && f.properties);
  projects.sort(byNumber);
  state.parcels = parcels;
  state.projects = projects;
  state.matched = matched;
  state.selected = null;
  render();
  document.body.dataset.query = String(query);
  return {parcels: parcels.map((f) => f.properties.parcel_no),
    projects: projects.map((f) => f.properties.permit_no), matched};
}

function queryExtent(bbox) {
  const [x0, y0, x1, y1] = bbox;
  const ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]];
  showDrawn(new ol.Polygon([ring.map((c) => ol.fromLonLat(c, map.projection))]));
  return queryGeometry({type: 'Polygon', coordinates: [ring]});
}

function queryPolygon(ring) {
  const closed = ring.concat([ring[0]]);
  showDrawn(new ol.Polygon([closed.map((c) => ol.fromLonLat(c, map.projection))]));
  return queryGeometry({type: 'Polygon', coordinates: [closed]});
}

function queryPoint(lngLat) {
  drawSource.clear();
  return queryGeometry({type: 'Point', coordinates: [lngLat[0], lngLat[1]]});
}

function showDrawn(geometry) {
  drawSource.clear();
  drawSource.addFeature(new ol.Feature(geometry));
}

// --- the lists ---------------------------------------------------------------------------------

function fmt(value, digits) {
  const n = Number(value);
  return Number.isFinite(n) ? n.toLocaleString(state.lang === 'en' ? 'en-US' : 'zh-CN',
    {minimumFractionDigits: digits, maximumFractionDigits: digits}) : String(value ?? '');
}

function row(dl, label, value) {
  if (value === undefined || value === null || value === '') {
    return;
  }
  dl.append(el('dt', label), el('dd', typeof value === 'object' ? JSON.stringify(value)
    : value));
}

/** The fields the node returned beyond the known ones, as text. */
function extras(dl, props, known) {
  for (const [name, value] of Object.entries(props)) {
    if (!known.includes(name) && !SKIP.has(name)) {
      row(dl, TEXT[state.lang][name] || name, value);
    }
  }
}

function parcelItem(f) {
  const p = f.properties;
  const li = el('li', undefined, 'parcel');
  li.append(el('h3', p.parcel_no));
  const dl = el('dl');
  row(dl, t('landUse'), [p.land_use, p.land_use_code && `(${p.land_use_code})`]
    .filter(Boolean).join(' '));
  row(dl, t('gbt'), [p.gbt21010_code, p.gbt21010_name].filter(Boolean).join(' '));
  if (p.area_m2 !== undefined && p.area_m2 !== null) {
    row(dl, t('area'), `${fmt(p.area_m2, 1)} m² · ${fmt(Number(p.area_m2) / MU_M2, 2)} ${t('mu')}`);
  }
  row(dl, t('district'), p.district);
  extras(dl, p, PARCEL_FIELDS);
  li.append(dl);
  return li;
}

function projectItem(f) {
  const p = f.properties;
  const li = el('li', undefined, 'project');
  li.append(el('h3', p.project_name));
  const dl = el('dl');
  row(dl, t('developer'), p.developer);
  row(dl, t('permit'), p.permit_no);
  if (p.units_for_sale !== undefined || p.units_total !== undefined) {
    row(dl, t('units'), `${p.units_for_sale ?? '?'} / ${p.units_total ?? '?'}`);
  }
  row(dl, t('status'), p.status);
  row(dl, t('parcel'), p.parcel_no);
  row(dl, t('district'), p.district);
  extras(dl, p, PROJECT_FIELDS);
  li.append(dl);
  return li;
}

function focusable(li, feature, index, kind) {
  li.tabIndex = 0;
  li.setAttribute('role', 'button');
  li.dataset.kind = kind;
  li.dataset.index = String(index);
  const go = () => select(kind, index);
  li.addEventListener('click', go);
  li.addEventListener('keydown', (e) => {
    if ((e.key === 'Enter' || e.key === ' ') && e.target === li) {
      e.preventDefault();
      go();
    }
  });
}

function render() {
  hitSource.clear();
  const list = $('parcels');
  list.replaceChildren();
  const printList = $('print-results');
  printList.replaceChildren();
  state.parcels.forEach((f, i) => {
    const li = parcelItem(f);
    li.dataset.parcel = String(f.properties.parcel_no);
    focusable(li, f, i, 'parcel');
    list.append(li);
    const p = f.properties;
    printList.append(el('li', [p.parcel_no, p.land_use, p.gbt21010_code, p.gbt21010_name,
      p.area_m2 !== undefined ? `${fmt(p.area_m2, 1)} m²` : ''].filter(Boolean).join(' · ')));
    const feature = format.readFeature(f);
    feature.set('kind', 'parcel');
    hitSource.addFeature(feature);
  });
  const projects = $('projects');
  projects.replaceChildren();
  state.projects.forEach((f, i) => {
    const li = projectItem(f);
    li.dataset.permit = String(f.properties.permit_no);
    focusable(li, f, i, 'project');
    projects.append(li);
    const p = f.properties;
    printList.append(el('li', [p.project_name, p.developer, p.permit_no, p.status]
      .filter(Boolean).join(' · ')));
    const feature = format.readFeature(f);
    feature.set('kind', 'project');
    hitSource.addFeature(feature);
  });
  $('parcels-section').hidden = false;
  $('projects-section').hidden = !config.projects;
  $('parcel-count').textContent = t('count', {n: state.parcels.length});
  $('project-count').textContent = t('count', {n: state.projects.length});
  $('parcel-total').textContent = state.matched > state.parcels.length
    ? t('capped', {max: state.parcels.length, n: state.matched}) : '';
  showStatus(state.parcels.length ? t('found', {n: state.parcels.length,
    p: state.projects.length}) : t('none'));
}

function select(kind, index) {
  const f = (kind === 'parcel' ? state.parcels : state.projects)[index];
  if (!f) {
    return;
  }
  state.selected = {kind, index};
  document.querySelectorAll('ol.results li.selected').forEach((e) => e.classList.remove(
    'selected'));
  const li = document.querySelector(`ol.results li[data-kind="${kind}"][data-index="${index}"]`);
  if (li) {
    li.classList.add('selected');
  }
  hitSource.getFeatures().forEach((h) => h.get('selected') && h.unset('selected'));
  const hit = hitSource.getFeatures().find((h) => h.get('kind') === kind &&
    (kind === 'parcel' ? h.get('parcel_no') === f.properties.parcel_no
      : h.get('permit_no') === f.properties.permit_no));
  const geometry = hit ? hit.getGeometry() : format.readGeometry(f.geometry);
  if (hit) {
    hit.set('selected', true);
  }
  olMap.getView().fit(geometry.getExtent(), {padding: [60, 60, 60, 60], maxZoom: 18,
    duration: 300});
  $('map').dataset.selected = `${kind}:${index}`;
}

// --- tools ---------------------------------------------------------------------------------------

function setTool(tool) {
  state.tool = tool;
  document.querySelectorAll('#tools button[data-tool]').forEach((b) => {
    b.setAttribute('aria-pressed', String(b.dataset.tool === tool));
  });
  if (state.draw) {
    olMap.removeInteraction(state.draw);
    state.draw = null;
  }
  $('hint').dataset.i18n = {point: 'hintPoint', box: 'hintBox', polygon: 'hintPolygon'}[tool];
  $('hint').textContent = t($('hint').dataset.i18n);
  if (tool === 'point') {
    return;
  }
  const draw = tool === 'box'
    ? new ol.Draw({source: drawSource, type: 'Circle', geometryFunction: ol.createBox(),
      style: drawnStyle})
    : new ol.Draw({source: drawSource, type: 'Polygon', style: drawnStyle});
  draw.on('drawstart', () => drawSource.clear());
  draw.on('drawend', (e) => {
    const geometry = format.writeGeometryObject(e.feature.getGeometry());
    queryGeometry(geometry).catch(() => {});
  });
  olMap.addInteraction(draw);
  state.draw = draw;
}

function clearAll() {
  state.queries += 1;
  state.parcels = [];
  state.projects = [];
  state.matched = 0;
  drawSource.clear();
  hitSource.clear();
  $('parcels').replaceChildren();
  $('projects').replaceChildren();
  $('print-results').replaceChildren();
  $('parcels-section').hidden = true;
  $('projects-section').hidden = true;
  showStatus('');
}

// --- legend, language --------------------------------------------------------------------------

function legend(list) {
  list.replaceChildren();
  const entries = LAND_USE.filter((r) => ['R', 'A', 'B', 'M', 'G'].includes(r[0]))
    .map((r) => [withAlpha(r[1], 0.8), `${r[0]} ${state.lang === 'en' ? r[3] : r[2]}`])
    .concat([[OTHER_COLOUR, t('legendOther')]]);
  if (config.projects) {
    entries.push([withAlpha(PROJECT_COLOUR, 0.6), t('legendProjects')]);
  }
  entries.push([withAlpha(HIT_COLOUR, 0.35), t('legendHit')]);
  for (const [colour, label] of entries) {
    const li = el('li');
    const swatch = el('span', undefined, 'swatch');
    swatch.style.backgroundColor = colour;
    li.append(swatch, el('span', label));
    list.append(li);
  }
}

function applyLanguage() {
  document.documentElement.lang = state.lang === 'en' ? 'en' : 'zh-CN';
  document.querySelectorAll('[data-i18n]').forEach((e) => {
    e.textContent = t(e.dataset.i18n, {z: MIN_PARCEL_ZOOM});
  });
  document.title = t('title');
  legend($('legend'));
  legend($('print-legend'));
  if (state.parcels.length || state.projects.length) {
    render();
  }
}

// --- print ---------------------------------------------------------------------------------------

/**
 * Puts the map into the print sheet (A4 portrait, ../printsheet.js): drawn again at print
 * resolution, with its scale bar, and the date. Resolves once the image is decoded.
 * @return {Promise<{width: number, height: number, scale: number}>}
 */
function preparePrint() {
  return prepareSheet(map, PRINT_LAYOUT.frame, {scaleWord: t('scale'), alt: t('title')});
}

// --- the page ------------------------------------------------------------------------------------

map.on('click', (e) => {
  if (state.tool === 'point') {
    queryPoint(e.lngLat).catch(() => {});
  } else {
    map.closePopup();  // a click of a drawing is no click on a project
  }
});
map.on('moveend', () => {
  loadView();
});
document.querySelectorAll('#tools button[data-tool]').forEach((b) => {
  b.addEventListener('click', () => setTool(b.dataset.tool));
});
$('clear').addEventListener('click', clearAll);
$('lang').addEventListener('click', () => {
  state.lang = state.lang === 'zh' ? 'en' : 'zh';
  localStorage.setItem('geoplat.cadastre.lang', state.lang);
  applyLanguage();
  if (state.draw || state.tool !== 'point') {
    $('hint').textContent = t($('hint').dataset.i18n);
  }
});
$('print').addEventListener('click', () => {
  preparePrint().then(() => window.print(), showError);
});
bindPrintEvents(preparePrint);

/** The geometry property of the parcels (their queryables), else `geom`. */
async function geometryProperty() {
  try {
    const q = await Geoplat.getJson(Geoplat.nodeUrl(config.node,
      `/ogc/collections/${encodeURIComponent(config.parcels)}/queryables`, {f: 'json'}, key));
    for (const [name, spec] of Object.entries(q.properties || {})) {
      const ref = spec && (spec.$ref || spec.format || '');
      if (/geometry|geojson/i.test(String(ref))) {
        return name;
      }
    }
  } catch (err) {
    // the default below; a query will say what is wrong
  }
  return 'geom';
}

window.map = map;
window.__cadastre = {queryExtent, queryPolygon, queryPoint, preparePrint, select, setTool,
  state, loadView};

async function start() {
  applyLanguage();
  state.geometryProperty = await geometryProperty();
  await map.ready.catch(() => {});
  await loadView();
  document.body.dataset.ready = 'true';
}

start();
