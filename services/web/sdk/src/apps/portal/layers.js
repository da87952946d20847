/**
 * The layer control: the node's OGC API collections (`/ogc/collections`, which already leaves
 * out what the caller may not see) as a list to toggle, reorder, fade and search, and the
 * overlays drawn for them: vector tiles (the collection's MVT, `Geoplat.Map.addLayer`) in the
 * `w` grid, where OpenLayers draws MVT; in the `c` grid (EPSG:4490, which MVT's
 * WebMercatorQuad cannot be reprojected to) the collection's items of the view's box, asked
 * again after each move.
 */
/* global Geoplat */
import {$, el, t} from './dom.js';

const PALETTE = ['#d32f2f', '#1976d2', '#388e3c', '#f57c00', '#7b1fa2', '#00838f', '#5d4037',
  '#c2185b', '#455a64', '#afb42b'];
const VECTOR_TILES = 'http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector';
const PAGE = 1000; // items of one view box (the node's items limit is higher; the map is not)

/**
 * @typedef {Object} LayerEntry
 * @property {string} id Collection id.
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
      const page = await this.portal.getJson(`/ogc/collections/${encodeURIComponent(
        this.entry.id)}/items`, {bbox: bounds.join(','), limit: PAGE, f: 'json'});
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
   * Reads the collections and builds the list.
   * @param {Array<{id: string, opacity: number}>} shown Layers to show (bottom to top).
   * @return {Promise<void>} Once listed.
   */
  async load(shown) {
    const answer = await this.portal.getJson('/ogc/collections', {f: 'json'});
    const collections = (answer.collections || []).filter((c) =>
      c && typeof c.id === 'string' && (c.itemType || 'feature') === 'feature');
    const byId = new Map(collections.map((c) => [c.id, c]));
    // shown layers first, in their order (top first), then the rest as the node lists them
    const order = [...shown].reverse().filter((s) => byId.has(s.id)).map((s) => s.id);
    for (const c of collections) {
      if (!order.includes(c.id)) {
        order.push(c.id);
      }
    }
    this.entries = order.map((id, i) => {
      const c = byId.get(id);
      const wanted = shown.find((s) => s.id === id);
      return {id, title: typeof c.title === 'string' && c.title ? c.title : id,
        color: PALETTE[collections.indexOf(c) % PALETTE.length],
        tiles: (c.links || []).some((l) => l && l.rel === VECTOR_TILES),
        on: !!wanted, opacity: wanted ? wanted.opacity : 1, drawn: null, index: i};
    });
    this.render();
    this.redraw();
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

  render() {
    const list = $('layers');
    list.replaceChildren();
    if (!this.entries.length) {
      list.append(el('li', t('noLayers'), 'muted'));
    }
    for (const entry of this.entries) {
      const li = el('li');
      li.dataset.layer = entry.id;
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
      label.style.borderLeft = `4px solid ${entry.color}`;
      label.style.paddingLeft = '4px';
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
      const table = el('button', t('table'));
      table.type = 'button';
      table.className = 'table';
      table.addEventListener('click', () => this.portal.table.open(entry));
      row.append(box, label, up, down, table);
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
      list.append(li);
    }
    this.filter();
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
        if (this.portal.grid === 'w' && entry.tiles) {
          entry.drawn = map.addLayer({type: 'vectortiles', collection: entry.id,
            opacity: entry.opacity, style: {color: entry.color, fillColor: entry.color + '33',
              radius: 4, width: 1.5}});
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
