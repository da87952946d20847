/**
 * The portal's UI texts (Chinese, English) and DOM helpers: every text from an API goes into
 * the DOM as text (textContent), never as HTML.
 */
import ANNOTATE_TEXT from './text-annotate.js';

const TEXT = {
  zh: {
    subtitle: '地理信息公共服务平台', q: '搜索地名、地址、兴趣点', lang: 'English',
    basemap: '底图', vec: '矢量', img: '影像', ter: '地形', labels: '注记', grid: '坐标系',
    mercator: '墨卡托', layers: '图层', filterLayers: '在图层中查找', opacity: '透明度',
    up: '上移', down: '下移', table: '属性表', measureLine: '测距', measureArea: '测面',
    share: '分享', copied: '链接已复制：', contains: '包含', apply: '筛选', clear: '清除',
    prev: '上一页', next: '下一页', close: '关闭', rows: '共 {n} 条，第 {from}-{to} 条',
    noFeature: '此处没有可见图层的要素', identify: '查询结果', error: '出错了：',
    noLayers: '没有可显示的图层', zoomIn: '放大到 {z} 级以上显示', length: '长度',
    area: '面积', hectare: '公顷', mu: '亩', measureHint: '单击添加节点，双击结束', pickPoint: '坐标', pickHint: '单击地图拾取坐标',
    gaussKruger: 'CGCS2000 3度带高斯-克吕格', outsideZones: '不在CGCS2000 3度带范围内',
    noPlace: '没有找到“{q}”', loading: '加载中…', field: '字段', zoomTo: '定位',
    noQuote: '筛选值中不能有单引号 (\')',
    division: '行政区', province: '省', city: '市', county: '区县',
    featureLayers: '要素图层', mapServices: '地图服务', moreLayers: '登录后可查看更多图层',
    signIn: '登录', divQuery: '区内查询',
    navMap: '地图', navCatalogue: '目录', navStatus: '服务状态', // the header's nav
  },
  en: {
    subtitle: 'Public geographic information service', q: 'Search places, addresses, POIs',
    lang: '中文', basemap: 'Base map', vec: 'Vector', img: 'Imagery', ter: 'Terrain',
    labels: 'Labels', grid: 'Grid', mercator: 'Web Mercator', layers: 'Layers',
    filterLayers: 'Find a layer', opacity: 'Opacity', up: 'Up', down: 'Down',
    table: 'Table', measureLine: 'Distance', measureArea: 'Area', share: 'Share',
    copied: 'Link copied: ', contains: 'contains', apply: 'Filter', clear: 'Clear',
    prev: 'Previous', next: 'Next', close: 'Close', rows: '{n} rows, {from}-{to}',
    noFeature: 'No feature of a visible layer here', identify: 'Features here',
    error: 'Error: ', noLayers: 'No layer to show', zoomIn: 'shown from level {z}',
    length: 'Length', area: 'Area', hectare: 'ha', mu: 'mu', loading: 'Loading…',
    measureHint: 'Click to add points, double-click to finish', pickPoint: 'Coordinate',
    pickHint: 'Click the map to pick a coordinate',
    gaussKruger: 'CGCS2000 3-degree Gauss-Krüger', outsideZones: 'outside the CGCS2000 3-degree zones', noPlace: 'Nothing found for “{q}”',
    field: 'Field', zoomTo: 'Zoom to', noQuote: 'A filter value cannot hold a single quote (\')',
    division: 'Division', province: 'Province', city: 'City', county: 'County',
    featureLayers: 'Feature layers', mapServices: 'Map services',
    moreLayers: 'Sign in to see more layers', signIn: 'Sign in', divQuery: 'Query inside',
    navMap: 'Map', navCatalogue: 'Catalogue', navStatus: 'Service status', // the header's nav
  },
};

/**
 * Adds the texts of a module (its own names) to the UI's.
 * @param {Object<string, Object<string, string>>} more zh and en texts.
 */
export function addTexts(more) {
  for (const lang of Object.keys(TEXT)) {
    Object.assign(TEXT[lang], more[lang] || {});
  }
}
Object.assign(TEXT.zh, ANNOTATE_TEXT.zh);
Object.assign(TEXT.en, ANNOTATE_TEXT.en);

export const ui = {lang: localStorage.getItem('geoplat.portal.lang') === 'en' ? 'en' : 'zh'};

/**
 * @param {string} name A text's name.
 * @param {Object} [values] `{name}` replacements.
 * @return {string} The text in the UI's language.
 */
export function t(name, values = {}) {
  return (TEXT[ui.lang][name] || name).replace(/\{(\w+)\}/g, (_, k) => String(values[k]));
}

/** @param {string} id An id. @return {HTMLElement} Its element. */
export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

export {el} from '../dom.js';

/** Writes the UI texts of the current language into the page. */
export function applyLanguage() {
  document.documentElement.lang = ui.lang === 'en' ? 'en' : 'zh-CN';
  document.querySelectorAll('[data-i18n]').forEach((e) => {
    e.textContent = t(/** @type {HTMLElement} */ (e).dataset.i18n);
  });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((e) => {
    const input = /** @type {HTMLInputElement} */ (e);
    input.placeholder = t(input.dataset.i18nPlaceholder);
    input.setAttribute('aria-label', input.placeholder);
  });
}

/** @param {unknown} err What went wrong: shown in the status line. */
export function showError(err) {
  const e = /** @type {any} */ (err);
  $('status').textContent = t('error') + (e && (e.detail || e.message) || String(err));
}

/**
 * A value of an attribute as text.
 * @param {*} value The value.
 * @return {string} Text.
 */
export function asText(value) {
  if (value === null || value === undefined) {
    return '';
  }
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}
