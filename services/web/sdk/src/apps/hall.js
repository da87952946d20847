/**
 * The service-hall map page (`/hall`, issue 15): the reference use of the SDK. Built by
 * build.mjs into dist/hall.js, served as /sdk/hall.js; it runs after /sdk/geoplat.js and uses
 * its global `Geoplat` (the Map, geocode, getJson, nodeUrl), so the page loads the SDK once.
 *
 * Reads its configuration (key, node) from `<script type="application/json" id="hall-config">`.
 * Every text from the APIs goes into the DOM with textContent, never as HTML.
 */

import {el, translator} from './dom.js';
/* global Geoplat */

const CENTRE = [120.2130, 30.2460];  // 杭州市民中心: where the user is until told otherwise

const TEXT = {
  zh: {
    title: '政务服务地图', search: '搜索', q: '要办什么？如：办身份证、不动产登记、bdcdj',
    address: '我的位置（地址）', locate: '定位', here: '用我的位置', from: '出发点：',
    fromCentre: '地图中心（点击地图可更改）', fromClick: '地图上点击的位置',
    fromGeo: '浏览器定位', fromLink: '链接中的位置', fromAddress: '地址：', items: '事项',
    noItems: '没有找到与“{q}”相符的事项', offices: '办理地点（按路程时间排序）',
    details: '事项详情', materials: '所需材料', legal: '法定时限', promised: '承诺时限',
    days: '{n} 个工作日', fee: '收费', free: '不收费', online: '网上办理', department: '部门',
    flags: '办理方式', nearby: '就近办', citywide: '全城通办', crossProvince: '跨省通办',
    route: '路线', drive: '驾车', walk: '步行', mode: '出行方式', steps: '路线详情',
    windows: '窗口', phone: '电话', appointment: '预约', openNow: '营业中',
    opensAt: '开门时间 {t}', closesAt: '关门时间 {t}', closed: '未营业', minutes: '{n} 分钟',
    unreachable: '无法到达', print: '打印', lang: 'English', error: '出错了：',
    total: '全程 {d}，约 {t}', there: '您已在此处', loading: '加载中…', none: '无',
  },
  en: {
    title: 'Service hall map', search: 'Search', q: 'What do you need? e.g. 办身份证, bdcdj',
    address: 'My location (address)', locate: 'Locate', here: 'Use my location',
    from: 'From: ', fromCentre: 'the map centre (click the map to change)',
    fromClick: 'the point clicked on the map', fromGeo: 'browser geolocation',
    fromLink: 'the point in the link', fromAddress: 'address: ', items: 'Items',
    noItems: 'No item matches “{q}”', offices: 'Offices (by travel time)',
    details: 'Item details', materials: 'Required materials', legal: 'Legal time limit',
    promised: 'Promised time limit', days: '{n} working days', fee: 'Fee', free: 'free',
    online: 'Online', department: 'Department', flags: 'How it can be done',
    nearby: 'nearby (就近办)', citywide: 'city-wide (全城通办)',
    crossProvince: 'cross-province (跨省通办)', route: 'Route', drive: 'Drive', walk: 'Walk',
    mode: 'Travel by', steps: 'Turn by turn', windows: 'Windows', phone: 'Phone',
    appointment: 'Appointment', openNow: 'open now', opensAt: 'opens at {t}',
    closesAt: 'closes at {t}', closed: 'closed', minutes: '{n} min', unreachable: 'unreachable',
    print: 'Print', lang: '中文', there: 'You are there', error: 'Error: ', total: '{d} in all, about {t}',
    loading: 'Loading…', none: 'none',
  },
};

const config = JSON.parse(document.getElementById('hall-config').textContent);
const key = config.key;
const state = {
  lang: localStorage.getItem('geoplat.hall.lang') === 'en' ? 'en' : 'zh',
  origin: CENTRE, originKind: 'fromCentre', originText: '', item: null, offices: [],
  mode: 'drive', markers: [], route: null, originMarker: null,
};

/** @return {HTMLElement} The element of this id. */
const $ = (id) => document.getElementById(id);

/** A text of the UI's language, `{name}` replaced. */
const t = translator(TEXT, () => state.lang);

/** A link, only to http(s) URLs. */
function link(href, text) {
  let url = null;
  try {
    url = new URL(href, location.href);
  } catch (err) {
    url = null;
  }
  if (!url || !/^https?:$/.test(url.protocol)) {
    return el('span', text);
  }
  const a = el('a', text);
  a.href = url.toString();
  a.rel = 'noopener noreferrer';
  a.target = '_blank';
  return a;
}

function api(path, params) {
  return Geoplat.getJson(Geoplat.nodeUrl(config.node, path, params, key));
}

function km(m) {
  return m >= 1000 ? `${(m / 1000).toFixed(1)} km` : `${Math.round(m)} m`;
}

function minutes(s) {
  return t('minutes', {n: Math.max(1, Math.round(s / 60))});
}

function clock(iso) {
  if (!iso) {
    return '';
  }
  const m = /T(\d{2}:\d{2})/.exec(iso);
  const day = /^\d{4}-(\d{2}-\d{2})/.exec(iso);
  const today = new Date().toISOString().slice(5, 10);
  return m ? (day && day[1] !== today ? `${day[1]} ${m[1]}` : m[1]) : iso;
}

function showError(err) {
  const detail = err && (err.detail || err.message) || String(err);
  $('status').textContent = t('error') + detail;
}

function applyLanguage() {
  document.documentElement.lang = state.lang === 'en' ? 'en' : 'zh-CN';
  document.querySelectorAll('[data-i18n]').forEach((e) => {
    e.textContent = t(e.dataset.i18n);
  });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((e) => {
    e.placeholder = t(e.dataset.i18nPlaceholder);
    e.setAttribute('aria-label', t(e.dataset.i18nPlaceholder));
  });
  document.title = t('title');
  showOrigin();
  if (state.item) {
    renderItem(state.item);
    renderOffices();
  }
}

function showOrigin() {
  const [lon, lat] = state.origin;
  $('origin').textContent = `${t('from')}${t(state.originKind)}${state.originText}` +
    ` (${lon.toFixed(5)}, ${lat.toFixed(5)})`;
}

function shareLink() {
  const u = new URL(location.href);
  u.search = '';
  if (state.item) {
    u.searchParams.set('item', state.item.code);
  }
  if (state.originKind !== 'fromCentre') {
    u.searchParams.set('near', state.origin.map((v) => v.toFixed(6)).join(','));
  }
  history.replaceState(null, '', u.toString());
}

async function setOrigin(lngLat, kind, text = '') {
  state.origin = [lngLat[0], lngLat[1]];
  state.originKind = kind;
  state.originText = text;
  if (state.originMarker) {
    state.originMarker.remove();
  }
  state.originMarker = map.addMarker({position: state.origin, title: t(kind),
    style: {fillColor: '#2e7d32', color: '#ffffff', radius: 7}});
  showOrigin();
  shareLink();
  if (state.item) {
    await loadOffices();
  }
}

// --- search --------------------------------------------------------------------------------

async function searchItems(q) {
  const list = $('items');
  list.replaceChildren();
  $('status').textContent = t('loading');
  let found;
  try {
    found = await api('/api/items', {q, limit: 20});
  } catch (err) {
    showError(err);
    return;
  }
  $('status').textContent = '';
  if (!found.items.length) {
    list.append(el('li', t('noItems', {q}), 'empty'));
    return;
  }
  for (const item of found.items) {
    const li = el('li');
    const b = el('button', item.name);
    b.type = 'button';
    b.dataset.code = item.code;
    b.addEventListener('click', () => openItem(item.code));
    li.append(b, el('span', ` ${item.department || ''}`, 'muted'));
    list.append(li);
  }
  if (found.items.length === 1) {
    await openItem(found.items[0].code);
  }
}

// --- the item ------------------------------------------------------------------------------

function row(dl, name, value) {
  dl.append(el('dt', t(name)));
  const dd = el('dd');
  if (value instanceof Node) {
    dd.append(value);
  } else {
    dd.textContent = value === null || value === undefined || value === '' ? t('none') : value;
  }
  dl.append(dd);
}

function renderItem(item) {
  $('details').hidden = false;
  $('item-name').textContent = item.name;
  const dl = $('item-facts');
  dl.replaceChildren();
  row(dl, 'department', item.department);
  row(dl, 'legal', item.legal_days ? t('days', {n: item.legal_days}) : null);
  row(dl, 'promised', item.promised_days ? t('days', {n: item.promised_days}) : null);
  row(dl, 'fee', item.fee || t('free'));
  row(dl, 'online', item.online_url ? link(item.online_url, item.online_url) : null);
  const flags = el('ul', undefined, 'flags');
  for (const [flag, name] of [['nearby', 'nearby'], ['citywide', 'citywide'],
    ['cross_province', 'crossProvince']]) {
    if (item.flags && item.flags[flag]) {
      flags.append(el('li', t(name)));
    }
  }
  row(dl, 'flags', flags.children.length ? flags : null);
  const ul = $('materials');
  ul.replaceChildren();
  (item.materials || []).forEach((m, i) => {
    const li = el('li');
    const box = el('input');
    box.type = 'checkbox';
    box.id = `material-${i}`;
    const label = el('label', m);
    label.htmlFor = box.id;
    li.append(box, label);
    ul.append(li);
  });
}

async function openItem(code) {
  $('status').textContent = t('loading');
  try {
    state.item = await api(`/api/items/${encodeURIComponent(code)}`);
  } catch (err) {
    showError(err);
    return;
  }
  $('status').textContent = '';
  renderItem(state.item);
  shareLink();
  await loadOffices();
}

// --- the offices ---------------------------------------------------------------------------

async function loadOffices() {
  clearRoute();
  let fc;
  try {
    fc = await api('/api/halls/nearest', {item: state.item.code, lon: state.origin[0],
      lat: state.origin[1], mode: state.mode, limit: 30});
  } catch (err) {
    showError(err);
    state.offices = [];
    renderOffices();
    return;
  }
  state.offices = fc.features;
  renderOffices();
  const coords = state.offices.map((f) => f.geometry.coordinates).concat([state.origin]);
  const xs = coords.map((c) => c[0]);
  const ys = coords.map((c) => c[1]);
  if (coords.length > 1) {
    map.fitBounds([Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)],
      {padding: [40, 40, 40, 40], maxZoom: 16});
  }
}

function statusText(p) {
  if (state.lang === 'zh' && p.status) {
    return p.status;  // the node's own words (营业中，17:00 结束 / 已休息，明天 09:00 开始)
  }
  if (p.open_now) {
    return `${t('openNow')}${p.closes_at ? ' · ' + t('closesAt', {t: clock(p.closes_at)}) : ''}`;
  }
  return p.opens_at ? t('opensAt', {t: clock(p.opens_at)}) : (p.status || t('closed'));
}

function renderOffices() {
  state.markers.forEach((m) => m.remove());
  state.markers = [];
  const list = $('offices');
  list.replaceChildren();
  $('offices-section').hidden = !state.item;
  state.offices.forEach((f) => {
    const p = f.properties;
    const li = el('li', undefined, p.open_now ? 'office open' : 'office closed');
    li.tabIndex = 0;
    li.dataset.office = String(p.office_id);
    li.setAttribute('role', 'button');
    li.append(el('h3', `${p.rank}. ${p.name}`));
    const times = p.duration === null ? t('unreachable')
      : `${km(p.distance)} · ${minutes(p.duration)}`;
    li.append(el('p', times, 'times'));
    li.append(el('p', statusText(p), 'hours'));
    if (p.address) {
      li.append(el('p', p.address, 'muted'));
    }
    if (p.windows) {
      li.append(el('p', `${t('windows')}: ${p.windows}`));
    }
    if (p.phone) {
      const ph = el('p', `${t('phone')}: `);
      const a = el('a', p.phone);
      a.href = `tel:${String(p.phone).replace(/[^0-9+-]/g, '')}`;
      ph.append(a);
      li.append(ph);
    }
    if (p.appointment_url) {
      const ap = el('p');
      ap.append(link(p.appointment_url, t('appointment')));
      li.append(ap);
    }
    const go = el('button', t('route'), 'route-button');
    go.type = 'button';
    go.addEventListener('click', (e) => {
      e.stopPropagation();
      drawRoute(f);
    });
    li.append(go);
    li.addEventListener('click', (e) => {
      if (!(e.target instanceof HTMLAnchorElement)) {
        drawRoute(f);
      }
    });
    li.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && e.target === li) {
        e.preventDefault();
        drawRoute(f);
      }
    });
    list.append(li);
    state.markers.push(map.addMarker({position: f.geometry.coordinates, title: p.name,
      style: {fillColor: p.open_now ? '#1a6dd6' : '#9e9e9e', color: '#ffffff', radius: 7}}));
  });
}

// --- the route -----------------------------------------------------------------------------

function clearRoute() {
  if (state.route) {
    state.route.remove();
    state.route = null;
  }
  $('steps').replaceChildren();
  $('route-section').hidden = true;
  document.querySelectorAll('#offices li.selected').forEach((e) => e.classList.remove('selected'));
}

async function drawRoute(office) {
  clearRoute();
  const li = document.querySelector(`#offices li[data-office="${Number(office.id)}"]`);
  if (li) {
    li.classList.add('selected');
  }
  let r;
  try {
    r = await api('/api/route', {from: state.origin.join(','),
      to: office.geometry.coordinates.join(','), mode: state.mode});
  } catch (err) {
    showError(err);
    return;
  }
  const line = r.features.find((f) => f.properties.role === 'route');
  if (!line) {
    return;
  }
  const path = line.geometry.coordinates;
  state.route = map.addLine({path, title: office.properties.name,
    style: {color: '#e53935', width: 6}});
  $('route-section').hidden = false;
  $('route-to').textContent = office.properties.name;
  $('route-total').textContent = t('total', {d: km(r.distance), t: minutes(r.duration)});
  const ol = $('steps');
  for (const s of r.steps) {
    ol.append(el('li', `${s.instruction}`));
  }
  if (!r.steps.length) {
    ol.append(el('li', t('there'), 'muted'));  // the office is at the user's point
  }
  const xs = path.map((c) => c[0]);
  const ys = path.map((c) => c[1]);
  map.fitBounds([Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)],
    {padding: [40, 40, 40, 40], maxZoom: 17});
  $('map').dataset.route = String(office.id);
}

// --- the page ------------------------------------------------------------------------------

const map = new Geoplat.Map('map', {key, node: config.node, center: CENTRE, zoom: 12});
window.map = map;
window.hall = state;

map.on('click', (e) => {
  if (!e.feature) {
    setOrigin(e.lngLat, 'fromClick');
  }
});

$('search').addEventListener('submit', (e) => {
  e.preventDefault();
  const q = $('q').value.trim();
  if (q) {
    searchItems(q);
  }
});

$('where').addEventListener('submit', async (e) => {
  e.preventDefault();
  const address = $('address').value.trim();
  if (!address) {
    return;
  }
  try {
    const g = await Geoplat.geocode(address, {key, node: config.node});
    const f = g.features && g.features[0];
    if (!f) {
      throw new Error(address);
    }
    await setOrigin(f.geometry.coordinates, 'fromAddress',
      f.properties.address || f.properties.name || address);
  } catch (err) {
    showError(err);
  }
});

$('here').addEventListener('click', () => {
  if (!navigator.geolocation) {
    return;
  }
  navigator.geolocation.getCurrentPosition(
    (pos) => setOrigin([pos.coords.longitude, pos.coords.latitude], 'fromGeo'),
    (err) => showError(err), {timeout: 10000});
});

document.querySelectorAll('input[name="mode"]').forEach((r) => {
  r.addEventListener('change', () => {
    state.mode = r.value === 'walk' ? 'walk' : 'drive';
    if (state.item) {
      loadOffices();
    }
  });
});

$('lang').addEventListener('click', () => {
  state.lang = state.lang === 'zh' ? 'en' : 'zh';
  localStorage.setItem('geoplat.hall.lang', state.lang);
  applyLanguage();
});

$('print').addEventListener('click', () => window.print());

async function start() {
  applyLanguage();
  const params = new URLSearchParams(location.search);
  const near = (params.get('near') || '').split(',').map(Number);
  if (near.length === 2 && near.every(Number.isFinite) && Math.abs(near[1]) <= 90 &&
      Math.abs(near[0]) <= 180) {
    state.origin = near;
    state.originKind = 'fromLink';
    showOrigin();
  }
  const code = params.get('item');
  if (code && /^[A-Z0-9]{2,32}$/.test(code)) {
    await openItem(code);
  }
  document.body.dataset.ready = 'true';
}

start();
