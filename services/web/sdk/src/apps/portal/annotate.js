/**
 * Annotations (在线标注, issue 16): a signed-in user draws points, lines and polygons (the SDK's
 * OpenLayers Draw), gives each a title and a note, and keeps them at this node
 * (/api/annotations, services/annotations/); the side panel lists them, to zoom to, edit (texts,
 * and the geometry with Modify), share by link, unshare and delete; the whole list downloads as
 * GeoJSON or KML. A portal URL with `?note=TOKEN` shows that shared annotation read-only and
 * zooms to it. Every text from the node goes into the DOM as text.
 */
/* global Geoplat */
import {$, el, t} from './dom.js';
import {annotationDoc, noteToken, shareUrl} from './links.js';

const DRAW_TYPES = {point: 'Point', line: 'LineString', polygon: 'Polygon'};
const API = '/api/annotations';

/**
 * @param {string} colour A CSS colour.
 * @return {Object} The OpenLayers style of annotations in that colour.
 */
function styleOf(colour) {
  const {ol} = Geoplat;
  return new ol.Style({
    stroke: new ol.Stroke({color: colour, width: 3}),
    fill: new ol.Fill({color: 'rgba(255, 255, 255, 0.25)'}),
    image: new ol.CircleStyle({radius: 7, fill: new ol.Fill({color: colour}),
      stroke: new ol.Stroke({color: '#fff', width: 2})})});
}

export default class Annotate {
  /** @param {Object} portal The portal. */
  constructor(portal) {
    this.portal = portal;
    /** @type {Array<Object>} The user's annotations (GeoJSON features, CRS84). */
    this.items = [];
    /** @type {Object|null} The shared annotation of `?note=`, read-only. */
    this.sharedItem = null;
    /** @type {null|{id: string|null, geometry: Object|null}} What the form is for. */
    this.editing = null;
    this.draw = null;
    this.modify = null;
    this.layer = null;
    this.sharedLayer = null;
    this.bind();
  }

  /** @return {boolean} Drawing or editing: map clicks are not for identifying. */
  busy() {
    return Boolean(this.draw || this.modify || this.editing);
  }

  /** @return {Object} GeoJSON (CRS84) <-> the map's projection. */
  format() {
    return new Geoplat.ol.GeoJSON({dataProjection: 'EPSG:4326',
      featureProjection: this.portal.map.projection});
  }

  /** On every (re)built map: its layers, drawn from the kept GeoJSON in its projection. */
  attach() {
    const {ol} = Geoplat;
    this.stopInteractions();
    this.modified = null; // a feature of the old map: an edit keeps its stored geometry
    this.layer = new ol.VectorLayer({source: new ol.VectorSource(), zIndex: 95,
      style: styleOf('#e65100'), properties: {geoplat: 'annotations'}});
    this.sharedLayer = new ol.VectorLayer({source: new ol.VectorSource(), zIndex: 96,
      style: styleOf('#6a1b9a'), properties: {geoplat: 'shared-annotation'}});
    const lib = this.portal.map.getLibMap();
    lib.addLayer(this.layer);
    lib.addLayer(this.sharedLayer);
    this.redraw();
  }

  redraw() {
    if (!this.layer) {
      return;
    }
    const format = this.format();
    const source = this.layer.getSource();
    source.clear();
    source.addFeatures(format.readFeatures({type: 'FeatureCollection', features: this.items}));
    const shared = this.sharedLayer.getSource();
    shared.clear();
    if (this.sharedItem) {
      shared.addFeatures(format.readFeatures(this.sharedItem));
    }
  }

  /**
   * A request to the annotation API (same origin: the node's cookie; JSON, so the CSRF guard
   * lets the changes through).
   * @param {string} method The method.
   * @param {string} path The path.
   * @param {Object} [body] JSON body.
   * @return {Promise<any>} The answer (null for 204).
   */
  async request(method, path, body) {
    const headers = {Accept: 'application/geo+json, application/json'};
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json';
    }
    const response = await fetch(new URL(path, this.portal.node).toString(), {method, headers,
      credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body)});
    if (response.status === 204) {
      return null;
    }
    const doc = await response.json().catch(() => ({}));
    if (!response.ok) {
      const err = new Error(doc.detail || doc.title || `HTTP ${response.status}`);
      Object.assign(err, {status: response.status, detail: doc.detail});
      throw err;
    }
    return doc;
  }

  /** After sign-in is known: the user's list, and the shared annotation of the URL. */
  async load() {
    try {
      await this.load_();
    } finally {
      document.body.dataset.annotations = 'ready';
    }
  }

  async load_() {
    const signedIn = Boolean(this.portal.user);
    $('ann-tools').hidden = !signedIn;
    $('ann-anon').hidden = signedIn;
    if (signedIn) {
      const fc = await this.request('GET', API);
      this.items = fc.features || [];
    } else {
      this.items = [];
    }
    this.render();
    const token = noteToken(location.search);
    if (token) {
      try {
        this.sharedItem = await this.request('GET', `${API}/shared/${token}`);
      } catch (err) {
        this.sharedItem = null;
        this.portal.fail(err);
      }
      this.renderShared();
      if (this.sharedItem) {
        this.zoomTo(this.sharedItem);
      }
    }
    this.redraw();
  }

  bind() {
    for (const [kind, type] of Object.entries(DRAW_TYPES)) {
      $(`ann-${kind}`).addEventListener('click', () => this.startDraw(type, kind));
    }
    $('ann-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.save().catch((err) => this.portal.fail(err));
    });
    $('ann-cancel').addEventListener('click', () => this.cancel());
  }

  stopInteractions() {
    const lib = this.portal.map && this.portal.map.getLibMap();
    for (const name of ['draw', 'modify']) {
      if (this[name] && lib) {
        lib.removeInteraction(this[name]);
      }
      this[name] = null;
    }
    document.querySelectorAll('#ann-tools button[aria-pressed]').forEach(
      (b) => b.setAttribute('aria-pressed', 'false'));
  }

  /**
   * @param {string} type Point, LineString or Polygon.
   * @param {string} kind Its button's name.
   */
  startDraw(type, kind) {
    const {ol} = Geoplat;
    this.cancel();
    if (this.portal.measure.active()) {
      this.portal.measure.stop();
    }
    $(`ann-${kind}`).setAttribute('aria-pressed', 'true');
    this.draw = new ol.Draw({source: this.layer.getSource(), type});
    this.draw.on('drawend', (e) => {
      const geometry = this.format().writeGeometryObject(e.feature.getGeometry(),
        {decimals: 9});
      this.stopInteractions();
      this.openForm({id: null, geometry}, '', '');
    });
    this.portal.map.getLibMap().addInteraction(this.draw);
    $('status').textContent = t('annDrawHint');
  }

  /**
   * @param {{id: string|null, geometry: Object|null}} editing What is edited.
   * @param {string} title The title shown.
   * @param {string} note The note shown.
   */
  openForm(editing, title, note) {
    this.editing = editing;
    const form = $('ann-form');
    form.hidden = false;
    /** @type {HTMLInputElement} */ ($('ann-title')).value = title;
    /** @type {HTMLTextAreaElement} */ ($('ann-note')).value = note;
    $('ann-title').focus();
    $('status').textContent = '';
  }

  /** Leaves drawing or editing without keeping anything. */
  cancel() {
    this.stopInteractions();
    this.editing = null;
    this.modified = null;
    $('ann-form').hidden = true;
    $('status').textContent = '';
    this.redraw();
  }

  /** Keeps what the form says: a POST for a new annotation, a PUT for an edited one. */
  async save() {
    const editing = this.editing;
    if (!editing) {
      return;
    }
    const title = /** @type {HTMLInputElement} */ ($('ann-title')).value;
    const note = /** @type {HTMLTextAreaElement} */ ($('ann-note')).value;
    let geometry = editing.geometry;
    if (editing.id && this.modified) {
      geometry = this.format().writeGeometryObject(this.modified.getGeometry(), {decimals: 9});
    }
    const doc = annotationDoc(geometry, title, note);
    const saved = editing.id
      ? await this.request('PUT', `${API}/${encodeURIComponent(editing.id)}`, doc)
      : await this.request('POST', API, doc);
    const at = this.items.findIndex((f) => f.id === saved.id);
    if (at >= 0) {
      this.items[at] = saved;
    } else {
      this.items.push(saved);
    }
    this.stopInteractions();
    this.editing = null;
    this.modified = null;
    $('ann-form').hidden = true;
    this.render();
    this.redraw();
    $('status').textContent = t('annSaved');
  }

  /** @param {Object} item One of the user's: its texts in the form, its geometry modifiable. */
  edit(item) {
    const {ol} = Geoplat;
    this.cancel();
    const feature = this.layer.getSource().getFeatures().find((f) => f.getId() === item.id);
    this.modified = feature || null;
    if (feature) {
      this.modify = new ol.Modify({features: new ol.Collection([feature])});
      this.portal.map.getLibMap().addInteraction(this.modify);
    }
    this.openForm({id: item.id, geometry: null}, item.properties.title,
      item.properties.note || '');
  }

  /** @param {Object} item One of the user's, deleted at the node. */
  async remove(item) {
    await this.request('DELETE', `${API}/${encodeURIComponent(item.id)}`);
    this.items = this.items.filter((f) => f.id !== item.id);
    if (this.editing && this.editing.id === item.id) {
      this.cancel();
    }
    this.render();
    this.redraw();
  }

  /**
   * @param {Object} item One of the user's.
   * @param {boolean} on Share (a link) or stop sharing.
   */
  async share(item, on) {
    const saved = await this.request(on ? 'POST' : 'DELETE',
      `${API}/${encodeURIComponent(item.id)}/share`);
    this.items = this.items.map((f) => (f.id === saved.id ? saved : f));
    this.render();
  }

  /** @param {Object} item A feature (CRS84): the map fits it. */
  zoomTo(item) {
    const geom = this.format().readGeometry(item.geometry);
    const view = this.portal.map.getLibMap().getView();
    if (item.geometry.type === 'Point') {
      view.setCenter(geom.getCoordinates());
      view.setZoom(Math.max(view.getZoom() || 0, 15));
    } else {
      view.fit(geom.getExtent(), {maxZoom: 17, padding: [40, 40, 40, 40]});
    }
  }

  /** The side panel's list of the user's annotations. */
  render() {
    const list = $('ann-list');
    list.replaceChildren(...this.items.map((item) => {
      const p = item.properties || {};
      const li = el('li');
      li.dataset.id = item.id;
      const head = el('div', '', 'row');
      const kind = el('span', t(`ann${item.geometry.type}`), 'muted');
      kind.dataset.i18n = `ann${item.geometry.type}`; // the language toggle retranslates it
      head.append(el('strong', p.title || '', 'ann-title'), kind);
      li.append(head);
      if (p.note) {
        li.append(el('p', p.note, 'ann-note'));
      }
      const buttons = el('div', '', 'row');
      const button = (name, cls, action) => {
        const b = /** @type {HTMLButtonElement} */ (el('button', t(name), cls));
        b.type = 'button';
        b.dataset.i18n = name;
        b.addEventListener('click', () => {
          Promise.resolve(action()).catch((err) => this.portal.fail(err));
        });
        buttons.append(b);
      };
      button('zoomTo', 'ann-zoom', () => this.zoomTo(item));
      button('annEdit', 'ann-edit', () => this.edit(item));
      if (p.share) {
        button('annUnshare', 'ann-unshare', () => this.share(item, false));
      } else {
        button('annShare', 'ann-share', () => this.share(item, true));
      }
      button('annDelete', 'ann-delete', () => this.remove(item));
      li.append(buttons);
      if (p.share) {
        const link = /** @type {HTMLInputElement} */ (el('input', null, 'ann-link'));
        link.readOnly = true;
        link.value = shareUrl(location.origin, p.share);
        link.setAttribute('aria-label', t('annLink'));
        li.append(link);
      }
      return li;
    }));
    $('ann-count').textContent = this.items.length ? String(this.items.length) : '';
  }

  /** The shared annotation of the URL, read-only: its title, note and owner. */
  renderShared() {
    const box = $('ann-shared');
    const item = this.sharedItem;
    box.hidden = !item;
    if (!item) {
      box.replaceChildren();
      return;
    }
    const p = item.properties || {};
    const head = el('h3', p.title || '', 'ann-title');
    box.replaceChildren(el('p', t('annSharedBy', {owner: p.owner || ''}), 'muted'), head);
    if (p.note) {
      box.append(el('p', p.note, 'ann-note'));
    }
  }
}
