/**
 * The catalogue page (目录服务, issue 16) at every node's `/catalogue`: an application of the
 * SDK, built by build.mjs into dist/catalogue.js (served as /sdk/catalogue.js), on the global
 * `Geoplat` of /sdk/geoplat.js (a small map to draw the extent on).
 *
 * Searches the node's OGC API Records (`/ogc/collections/catalogue/items`: q, type,
 * origin_node, bbox), paged; the records API filters them for the caller (the user's cookie
 * goes with every request: same origin). A result lists its title, type, node, access and
 * health; it opens in the portal (its node's `/` with the layer in the view, ./links.js) or
 * copies its service URL (WMTS/WMS capabilities, OGC API collection) for QGIS.
 *
 * `window.cataloguePage` is there for the browser tests.
 */
/* global Geoplat */
import {el} from '../dom.js';
import {$, NodeClient, language, readConfig} from '../pagekit.js';
import {mapLink, parseBbox, serviceUrl} from './links.js';
import TEXT from './texts.js';

const PAGE = 10;
const TYPES = ['OGCAPI-Features', 'OGCAPI-Tiles', 'OGCAPI-Records', 'WMTS', 'WMS', 'node'];
const {t, apply, toggle} = language(TEXT);

class CataloguePage {
  constructor(config) {
    this.config = config;
    this.client = new NodeClient(config.node);
    this.offset = 0;
    this.matched = 0;
    this.features = [];
    this.seq = 0;
    this.map = null;
    this.draw = null;
  }

  async start() {
    apply();
    this.fillTypes();
    $('lang').addEventListener('click', () => {
      toggle();
      this.fillTypes();
      this.fillNodes(this.nodes || []);
      this.render();
    });
    $('search').addEventListener('submit', (e) => {
      e.preventDefault();
      this.offset = 0;
      this.query();
    });
    $('prev').addEventListener('click', () => {
      this.offset = Math.max(0, this.offset - PAGE);
      this.query();
    });
    $('next').addEventListener('click', () => {
      this.offset += PAGE;
      this.query();
    });
    $('draw-box').addEventListener('click', () => this.startDraw());
    $('clear-box').addEventListener('click', () => this.clearBox());
    this.buildMap();
    await this.client.whoami();
    try {
      const health = await this.client.get('/registry/api/health');
      this.nodes = [];
      const walk = (n) => {
        if (n && typeof n.id === 'string') {
          this.nodes.push(n.id);
          (Array.isArray(n.children) ? n.children : []).forEach(walk);
        }
      };
      walk(health.tree);
      this.fillNodes(this.nodes);
    } catch (err) {
      this.fail(err);
    }
    await this.query();
    document.body.dataset.ready = 'true';
  }

  fillTypes() {
    const select = /** @type {HTMLSelectElement} */ ($('type'));
    const value = select.value;
    const all = el('option', t('anyType'));
    all.value = '';
    select.replaceChildren(all, ...TYPES.map((ty) => {
      const o = el('option', ty);
      o.value = ty;
      return o;
    }));
    select.value = value;
  }

  fillNodes(ids) {
    const select = /** @type {HTMLSelectElement} */ ($('node'));
    const value = select.value;
    const all = el('option', t('anyNode'));
    all.value = '';
    select.replaceChildren(all, ...ids.map((id) => {
      const o = el('option', id);
      o.value = id;
      return o;
    }));
    select.value = ids.includes(value) ? value : '';
  }

  buildMap() {
    const ext = Array.isArray(this.config.extent) && this.config.extent.length === 4 ?
      this.config.extent : [73, 18, 135, 54];
    const map = new Geoplat.Map('map', {key: this.config.key, node: this.config.node,
      crs: 'EPSG:4490', basemap: 'vec', labels: false,
      center: [(ext[0] + ext[2]) / 2, (ext[1] + ext[3]) / 2], zoom: 7, maxZoom: 18});
    this.map = map;
    /** @type {any} */ (window).map = map;
    this.boxSource = new Geoplat.ol.VectorSource();
    map.getLibMap().addLayer(new Geoplat.ol.VectorLayer({source: this.boxSource, zIndex: 90,
      style: new Geoplat.ol.Style({stroke: new Geoplat.ol.Stroke({color: '#c62828', width: 2}),
        fill: new Geoplat.ol.Fill({color: 'rgba(198, 40, 40, 0.1)'})})}));
    map.on('error', (e) => this.fail(e.error || e));
  }

  startDraw() {
    const lib = this.map.getLibMap();
    if (this.draw) {
      lib.removeInteraction(this.draw);
    }
    this.boxSource.clear();
    this.draw = new Geoplat.ol.Draw({source: this.boxSource, type: 'Circle',
      geometryFunction: Geoplat.ol.createBox()});
    $('draw-box').setAttribute('aria-pressed', 'true');
    $('note').textContent = t('drawHint');
    this.draw.on('drawend', (e) => {
      const [x1, y1, x2, y2] = e.feature.getGeometry().getExtent();
      const a = Geoplat.ol.toLonLat([x1, y1], this.map.projection);
      const b = Geoplat.ol.toLonLat([x2, y2], this.map.projection);
      /** @type {HTMLInputElement} */ ($('bbox')).value = [a[0], a[1], b[0], b[1]]
        .map((v) => Number(v.toFixed(6))).join(',');
      $('note').textContent = '';
      $('draw-box').setAttribute('aria-pressed', 'false');
      setTimeout(() => lib.removeInteraction(this.draw), 0);
      this.offset = 0;
      this.query();
    });
    lib.addInteraction(this.draw);
  }

  clearBox() {
    this.boxSource.clear();
    /** @type {HTMLInputElement} */ ($('bbox')).value = '';
    this.offset = 0;
    this.query();
  }

  /** @return {?Object} The query of the form (null: the extent does not parse). */
  params() {
    const bbox = parseBbox(/** @type {HTMLInputElement} */ ($('bbox')).value);
    if (bbox === null) {
      return null;
    }
    return {q: /** @type {HTMLInputElement} */ ($('q')).value.trim(),
      type: /** @type {HTMLSelectElement} */ ($('type')).value,
      origin_node: /** @type {HTMLSelectElement} */ ($('node')).value,
      bbox: bbox ? bbox.join(',') : undefined};
  }

  async query() {
    const params = this.params();
    if (!params) {
      this.fail(new Error(t('badBbox')));
      return;
    }
    const seq = ++this.seq;
    document.body.dataset.loading = 'true';
    try {
      const page = await this.client.get('/ogc/collections/catalogue/items',
        {...params, limit: PAGE, offset: this.offset, f: 'json'});
      if (seq !== this.seq) {
        return;
      }
      this.features = Array.isArray(page.features) ? page.features : [];
      this.matched = Number(page.numberMatched) || 0;
      this.lastQuery = {...params, offset: this.offset};
      $('error').textContent = '';
      this.render();
    } catch (err) {
      if (seq === this.seq) {
        this.fail(err);
      }
    } finally {
      if (seq === this.seq) {
        document.body.dataset.loading = 'false';
      }
    }
  }

  fail(err) {
    const e = /** @type {any} */ (err);
    $('error').textContent = t('error') + (e && e.message || String(err));
  }

  render() {
    const list = $('results');
    list.replaceChildren(...this.features.map((f) => this.item(f)));
    const n = this.matched;
    $('count').textContent = n ? t('count', {n, from: this.offset + 1,
      to: this.offset + this.features.length}) : t('none');
    $('count').dataset.matched = String(n);
    /** @type {HTMLButtonElement} */ ($('prev')).disabled = this.offset <= 0;
    /** @type {HTMLButtonElement} */ ($('next')).disabled =
      this.offset + this.features.length >= n;
  }

  /**
   * @param {Object} f A record.
   * @return {HTMLElement} Its item in the results.
   */
  item(f) {
    const p = f.properties || {};
    const li = el('li', undefined, 'record');
    li.dataset.id = String(f.id);
    li.dataset.access = String(p.access);
    const head = el('div', undefined, 'head');
    head.append(el('strong', p.title, 'title'));
    li.append(head);
    const meta = el('div', undefined, 'meta');
    meta.append(el('span', p.type, 'type'), el('span', p.origin_node, 'node'),
      el('span', t(p.access), `access a-${['public', 'registered', 'restricted'].includes(
        p.access) ? p.access : 'other'}`), el('span', t(p.health), 'health'));
    li.append(meta);
    if (p.description) {
      li.append(el('p', p.description, 'muted desc'));
    }
    const actions = el('div', undefined, 'actions');
    const href = mapLink(f);
    if (href) {
      const a = /** @type {HTMLAnchorElement} */ (el('a', t('addToMap'), 'add'));
      a.href = href;
      actions.append(a);
    } else {
      actions.append(el('span', t('noMap'), 'muted'));
    }
    const url = serviceUrl(f);
    if (url) {
      const b = el('button', t('copyUrl'), 'copy');
      b.type = 'button';
      b.dataset.url = url;
      b.addEventListener('click', () => this.copy(url));
      actions.append(b);
    }
    li.append(actions);
    return li;
  }

  /** @param {string} url A service URL: to the clipboard (else shown to copy by hand). */
  copy(url) {
    const shown = (name) => () => {
      $('note').textContent = t(name, {url});
      $('note').dataset.url = url;
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(url).then(shown('copied'), shown('copyHere'));
    } else {
      shown('copyHere')();
    }
  }
}

const page = new CataloguePage(readConfig('catalogue-config'));
/** @type {any} */ (window).cataloguePage = page;
page.start().catch((err) => page.fail(err));
