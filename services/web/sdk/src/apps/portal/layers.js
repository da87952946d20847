/**
 * The layer control: the node's OGC API collections (`/ogc/collections`, which already leaves
 * out what the caller may not see), and from the node's catalogue (OGC API Records, filtered
 * for the caller as well) the feature layers of the other nodes of its part of the federation
 * and the WMS/WMTS map services that are not base maps (composites such as the service-hall
 * map), grouped by node and by kind, as a list to toggle, reorder, fade and search, each with
 * its legend. Feature layers are drawn as vector tiles (the collection's MVT,
 * `Geoplat.Map.addLayer`) in the `w` grid, where OpenLayers draws MVT; in the `c` grid
 * (EPSG:4490, which MVT's WebMercatorQuad cannot be reprojected to) as the collection's items
 * of the view's box, asked again after each move; map services as WMTS (or WMS) overlays.
 * Another node's layers are asked for with the browser key, which reaches public layers only.
 */
/* global Geoplat */
import {$, el, t} from './dom.js';
import {authLink} from './links.js';

const PALETTE = ['#d32f2f', '#1976d2', '#388e3c', '#f57c00', '#7b1fa2', '#00838f', '#5d4037',
  '#c2185b', '#455a64', '#afb42b'];
const VECTOR_TILES = 'http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector';
const PAGE = 1000; // items of one view box (the node's items limit is higher; the map is not)
const RECORDS_PAGE = 500;
const RECORDS_CAP = 5000;
const BASEMAPS = new Set(['vec', 'cva', 'img', 'cia', 'ter', 'cta']);
const SAFE_ID = /^[A-Za-z0-9_-]{1,60}$/;

/**
 * @typedef {Object} LayerEntry
 * @property {string} id Its id in the list and the URL: the collection's id at this node,
 *     `node.collection` for another node's, `map.node.layer` for a map service.
 * @property {'features'|'wmts'|'wms'} kind What it is.
 * @property {string} [collection] `features`: the collection at its node.
 * @property {string} [layer] `wmts`/`wms`: the layer name.
 * @property {string} node Base URL of its node.
 * @property {string} group Id of its node (the group it is listed in).
 * @property {string} title Its title.
 * @property {string} color Its colour on the map.
 * @property {boolean} tiles Whether it has vector tiles.
 * @property {boolean} on Shown.
 * @property {number} opacity 0..1.
 * @property {Object|null} drawn What draws it (overlay of the SDK or a view-box layer).
 * @property {HTMLElement} [item] Its list entry.
 */

/** The items of a collection in the map's view box (c grid), reloaded after each move. */
class ViewBoxLayer {
  /**
   * @param {Object} portal The portal (map, fetch helper).
   * @param {LayerEntry} entry The layer.
   */
  constructor(portal, entry) {
    const {ol} = Geoplat;
    this.portal = portal;
    this.entry = entry;
    this.source = new ol.VectorSource();
    this.layer = new ol.VectorLayer({source: this.source,
      style: Geoplat.toStyle({color: entry.color, fillColor: entry.color + '33', radius: 5,
        width: 1.5}), properties: {geoplat: 'portal', collection: entry.id}});
    this.format = new ol.GeoJSON({dataProjection: 'EPSG:4326',
      featureProjection: portal.map.projection});
    this.seq = 0;
    this.listener = () => this.load();
    portal.map.getLibMap().on('moveend', this.listener);
    this.load();
  }

  async load() {
    const seq = ++this.seq;
    const bounds = this.portal.map.getBounds().map((v) => Number(v.toFixed(7)));
    try {
      const page = await this.portal.layerJson(this.entry, '/items',
        {bbox: bounds.join(','), limit: PAGE, f: 'json'});
      if (seq !== this.seq) {
        return;
      }
      const features = this.format.readFeatures({type: 'FeatureCollection',
        features: page.features || []});
      this.source.clear(true);
      this.source.addFeatures(features);
    } catch (err) {
      this.portal.fail(err);
    }
  }

  getLibLayer() {
    return this.layer;
  }

  remove() {
    this.seq++;
    this.portal.map.getLibMap().un('moveend', this.listener);
    this.portal.map.getLibMap().removeLayer(this.layer);
  }
}

export default class LayerControl {
  /** @param {Object} portal The portal. */
  constructor(portal) {
    this.portal = portal;
    /** @type {Array<LayerEntry>} top of the list first (drawn on top) */
    this.entries = [];
    $('layer-filter').addEventListener('input', () => this.filter());
  }

  /**
   * Reads the collections (and the catalogue) and builds the list.
   * @param {Array<{id: string, opacity: number}>} shown Layers to show (bottom to top).
   * @return {Promise<void>} Once listed.
   */
  async load(shown) {
    const [answer, records] = await Promise.all([
      this.portal.getJson('/ogc/collections', {f: 'json'}),
      this.records().catch(() => [])]);
    const collections = (answer.collections || []).filter((c) =>
      c && typeof c.id === 'string' && (c.itemType || 'feature') === 'feature');
    const own = this.portal.config.id;
    const found = collections.map((c) => ({id: c.id, collection: c.id, node: this.portal.node,
      group: own, kind: 'features',
      title: typeof c.title === 'string' && c.title ? c.title : c.id,
      tiles: (c.links || []).some((l) => l && l.rel === VECTOR_TILES)}));
    found.push(...fromRecords(records, own, collections.map((c) => c.id)));
    this.groups = groupTitles(records, own, this.portal.config.title);
    const byId = new Map(found.map((f) => [f.id, f]));
    // shown layers first, in their order (top first), then the rest as listed
    const order = [...shown].reverse().filter((s) => byId.has(s.id)).map((s) => s.id);
    for (const f of found) {
      if (!order.includes(f.id)) {
        order.push(f.id);
      }
    }
    this.entries = order.map((id, i) => {
      const f = byId.get(id);
      const wanted = shown.find((s) => s.id === id);
      return {...f, color: PALETTE[found.indexOf(f) % PALETTE.length], on: !!wanted,
        opacity: wanted ? wanted.opacity : 1, drawn: null, index: i};
    });
    this.render();
    this.redraw();
  }

  /**
   * The node's catalogue records (approved, filtered for the caller), every page.
   * @return {Promise<Array<Object>>} The records (GeoJSON features).
   */
  async records() {
    const out = [];
    for (let offset = 0; offset < RECORDS_CAP; offset += RECORDS_PAGE) {
      const page = await this.portal.getJson('/ogc/collections/catalogue/items',
        {f: 'json', limit: RECORDS_PAGE, offset});
      const features = page.features || [];
      out.push(...features);
      if (features.length < RECORDS_PAGE) {
        break;
      }
    }
    return out;
  }

  /** @return {Array<{id: string, opacity: number}>} What is shown, bottom to top. */
  shown() {
    return this.entries.filter((e) => e.on).reverse()
      .map((e) => ({id: e.id, opacity: e.opacity}));
  }

  /** @return {Array<LayerEntry>} Shown layers, top first. */
  visible() {
    return this.entries.filter((e) => e.on);
  }

  /** @return {Array<LayerEntry>} Shown feature layers (identify, tables), top first. */
  queryable() {
    return this.entries.filter((e) => e.on && e.kind === 'features');
  }

  render() {
    const list = $('layers');
    list.replaceChildren();
    if (!this.entries.length) {
      list.append(el('li', t('noLayers'), 'muted'));
    }
    // groups in the order of their first entry; within a group, the list's order
    const groups = [];
    for (const entry of this.entries) {
      const key = `${entry.group}/${entry.kind === 'features' ? 'features' : 'maps'}`;
      let g = groups.find((x) => x.key === key);
      if (!g) {
        g = {key, node: entry.group, kind: entry.kind === 'features' ? 'features' : 'maps',
          entries: []};
        groups.push(g);
      }
      g.entries.push(entry);
    }
    for (const g of groups) {
      const head = el('li', `${(this.groups && this.groups[g.node]) || g.node} · ${
        t(g.kind === 'features' ? 'featureLayers' : 'mapServices')}`, 'group');
      head.dataset.group = g.key;
      list.append(head);
      for (const entry of g.entries) {
        list.append(this.item(entry));
      }
    }
    if (!this.portal.user) {
      const lock = el('li', null, 'locked');
      lock.append(el('span', '🔒 ' + t('moreLayers') + ' '));
      const a = /** @type {HTMLAnchorElement} */ (el('a', t('signIn')));
      a.href = signInHref();
      a.addEventListener('click', () => {
        a.href = signInHref();
      });
      lock.append(a);
      list.append(lock);
    }
    this.filter();
  }

  /**
   * @param {LayerEntry} entry A layer.
   * @return {HTMLElement} Its list entry (toggle, title, order, table, opacity, legend).
   */
  item(entry) {
    const li = el('li');
    li.dataset.layer = entry.id;
    li.dataset.kind = entry.kind;
    const row = el('div', null, 'row');
    const box = /** @type {HTMLInputElement} */ (el('input'));
    box.type = 'checkbox';
    box.checked = entry.on;
    box.id = `layer-${entry.id}`;
    box.addEventListener('change', () => {
      entry.on = box.checked;
      this.redraw();
    });
    const label = el('label', entry.title);
    label.htmlFor = box.id;
    const up = el('button', '↑');
    up.type = 'button';
    up.title = t('up');
    up.className = 'up';
    up.addEventListener('click', () => this.move(entry, -1));
    const down = el('button', '↓');
    down.type = 'button';
    down.title = t('down');
    down.className = 'down';
    down.addEventListener('click', () => this.move(entry, 1));
    row.append(box, legendOf(entry), label, up, down);
    if (entry.kind === 'features') {
      const table = el('button', t('table'));
      table.type = 'button';
      table.className = 'table';
      table.addEventListener('click', () => this.portal.table.open(entry));
      row.append(table);
    }
    const opacity = /** @type {HTMLInputElement} */ (el('input'));
    opacity.type = 'range';
    opacity.min = '0';
    opacity.max = '1';
    opacity.step = '0.05';
    opacity.value = String(entry.opacity);
    opacity.className = 'opacity';
    opacity.setAttribute('aria-label', `${t('opacity')} ${entry.title}`);
    opacity.addEventListener('input', () => {
      entry.opacity = Number(opacity.value);
      if (entry.drawn) {
        entry.drawn.getLibLayer().setOpacity(entry.opacity);
      }
      this.portal.saveView();
    });
    li.append(row, opacity);
    entry.item = li;
    return li;
  }

  /** Shows the entries whose title or id holds the search text. */
  filter() {
    const q = /** @type {HTMLInputElement} */ ($('layer-filter')).value.trim().toLowerCase();
    for (const entry of this.entries) {
      if (entry.item) {
        entry.item.hidden = !!q && !entry.title.toLowerCase().includes(q) &&
          !entry.id.toLowerCase().includes(q);
      }
    }
    document.querySelectorAll('#layers li.group').forEach((head) => {
      const key = /** @type {HTMLElement} */ (head).dataset.group;
      /** @type {HTMLElement} */ (head).hidden = !this.entries.some((e) => e.item &&
        !e.item.hidden && `${e.group}/${e.kind === 'features' ? 'features' : 'maps'}` === key);
    });
  }

  /**
   * @param {LayerEntry} entry A layer.
   * @param {number} by -1 up (drawn higher), 1 down.
   */
  move(entry, by) {
    const i = this.entries.indexOf(entry);
    const j = i + by;
    if (j < 0 || j >= this.entries.length) {
      return;
    }
    this.entries.splice(i, 1);
    this.entries.splice(j, 0, entry);
    this.render();
    this.redraw();
  }

  /** Draws what is on, in the list's order; drops what is off. */
  redraw() {
    const map = this.portal.map;
    const n = this.entries.length;
    this.entries.forEach((entry, i) => {
      if (!entry.on && entry.drawn) {
        this.undraw(entry);
      }
      if (entry.on && !entry.drawn) {
        if (entry.kind !== 'features') {
          entry.drawn = map.addLayer({type: entry.kind, layer: entry.layer, node: entry.node,
            opacity: entry.opacity});
        } else if (this.portal.grid === 'w' && entry.tiles) {
          entry.drawn = map.addLayer({type: 'vectortiles', collection: entry.collection,
            node: entry.node, opacity: entry.opacity, style: {color: entry.color,
              fillColor: entry.color + '33', radius: 4, width: 1.5}});
        } else {
          entry.drawn = new ViewBoxLayer(this.portal, entry);
          map.getLibMap().addLayer(entry.drawn.getLibLayer());
        }
      }
      if (entry.drawn) {
        const layer = entry.drawn.getLibLayer();
        layer.setZIndex(10 + n - i); // first in the list on top; graphics stay above (100)
        layer.setOpacity(entry.opacity);
      }
    });
    this.portal.saveView();
  }

  /** @param {LayerEntry} entry A drawn layer: removed from the map. */
  undraw(entry) {
    if (entry.drawn instanceof ViewBoxLayer) {
      entry.drawn.remove();
    } else if (entry.drawn) {
      this.portal.map.removeLayer(entry.drawn);
    }
    entry.drawn = null;
  }

  /** Forgets every drawn layer (the map is being replaced). */
  detach() {
    for (const entry of this.entries) {
      if (entry.drawn instanceof ViewBoxLayer) {
        entry.drawn.remove();
      }
      entry.drawn = null;
    }
  }
}

/**
 * The layers of the catalogue's records the control lists besides the node's collections:
 * other nodes' feature collections, and map services that are not base maps (one entry per
 * node and layer: WMTS where the node offers it, else WMS).
 * @param {Array<Object>} records Catalogue records (GeoJSON features).
 * @param {string} own This node's id.
 * @param {Array<string>} ownIds This node's collections.
 * @return {Array<Object>} Entries (without colour and state).
 */
export function fromRecords(records, own, ownIds) {
  const out = [];
  const seen = new Set();
  const sorted = [...records].sort((a, b) => (rank(a) < rank(b) ? -1 : rank(a) > rank(b) ? 1 : 0));
  for (const r of sorted) {
    const p = r && r.properties || {};
    const layer = typeof p.layer_id === 'string' ? p.layer_id : '';
    const node = typeof p.origin_node === 'string' ? p.origin_node : '';
    const href = serviceHref(r);
    // these are read with the browser key, which reaches public layers only: another node's
    // other layers are for its own portal (where its cookie signs the user in)
    if (!layer || !node || !href || !SAFE_ID.test(layer) || !SAFE_ID.test(node) ||
        p.access !== 'public') {
      continue;
    }
    const title = typeof p.title === 'string' && p.title ? p.title : layer;
    if (p.type === 'OGCAPI-Features' && node !== own) {
      const id = `${node}.${layer}`;
      const base = href.split('/ogc/collections/')[0];
      if (!seen.has(id) && base !== href) {
        seen.add(id);
        out.push({id, collection: layer, node: base, group: node, kind: 'features', title,
          tiles: records.some((x) => x.properties && x.properties.type === 'OGCAPI-Tiles' &&
            x.properties.origin_node === node && x.properties.layer_id === layer)});
      }
    } else if ((p.type === 'WMTS' || p.type === 'WMS') && !BASEMAPS.has(layer) &&
        !(node === own && ownIds.includes(layer))) {
      const id = `map.${node}.${layer}`;
      if (!seen.has(id)) {
        seen.add(id);
        const base = href.split(p.type === 'WMTS' ? '/wmts' : '/wms')[0];
        // a map service's title names its node, which heads its group already
        const short = title.replace(/\s*\([^()]*(\([^()]*\)[^()]*)*\)$/, '');
        out.push({id, layer, node: base, group: node, kind: p.type.toLowerCase(),
          title: short || title});
      }
    }
  }
  return out;
}

/**
 * @param {Object} r A record.
 * @return {string} Its sort key: by tier (the origin's path: the main node, its sub-nodes,
 *     theirs), WMTS before WMS, then as listed.
 */
function rank(r) {
  const p = r && r.properties || {};
  const path = typeof p.origin_path === 'string' ? p.origin_path : '';
  return `${String(path.split('/').length).padStart(2, '0')}/${path}/${
    p.type === 'WMTS' ? 0 : 1}`;
}

/**
 * @param {Object} r A record.
 * @return {string} Its service link without query (keys stay out of what is stored).
 */
function serviceHref(r) {
  const link = (r.links || []).find((l) => l && l.rel === 'service' &&
    typeof l.href === 'string');
  if (!link) {
    return '';
  }
  try {
    const u = new URL(link.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin + u.pathname : '';
  } catch {
    return '';
  }
}

/**
 * @param {Array<Object>} records Catalogue records.
 * @param {string} own This node's id.
 * @param {string} ownTitle Its title.
 * @return {Object<string, string>} Node id -> title (from the `node` records).
 */
export function groupTitles(records, own, ownTitle) {
  const out = {[own]: ownTitle};
  for (const r of records) {
    const p = r && r.properties || {};
    if (p.type === 'node' && typeof p.origin_node === 'string' && typeof p.title === 'string') {
      out[p.origin_node] = out[p.origin_node] || p.title;
    }
  }
  return out;
}

/**
 * A legend built from the layer's style: the colour it is drawn in, as a point, a line and an
 * area; map services (drawn by their node) show a tile symbol.
 * @param {LayerEntry} entry A layer.
 * @return {HTMLElement} The legend symbol.
 */
function legendOf(entry) {
  const span = el('span', null, 'legend');
  span.setAttribute('aria-hidden', 'true');
  if (entry.kind === 'features') {
    span.style.setProperty('--c', entry.color);
    span.append(el('i', null, 'pt'), el('i', null, 'ln'), el('i', null, 'ar'));
  } else {
    span.classList.add('tiles');
  }
  return span;
}

/** @return {string} The node's sign-in, back to this view afterwards. */
function signInHref() {
  return authLink('/auth/login', location);
}
