/**
 * 图属互查: identify (a click lists the features of the shown layers under it, OGC API Features
 * items in a box of a few pixels around the point, with the attribute titles of the
 * collection's queryables) and the attribute table of a layer (paged items, a filter built
 * from field, operator and value as CQL2 text, a row zooms to and highlights its feature).
 */
/* global Geoplat */
import {$, asText, el, t} from './dom.js';

const TOLERANCE_PX = 6;
const IDENTIFY_LIMIT = 10;
const TABLE_PAGE = 20;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A CQL2 text comparison (as pygeoapi's GET `filter` parses it).
 * @param {string} field The property name.
 * @param {string} op `=`, `<>`, `<`, `<=`, `>`, `>=`, `LIKE` (contains).
 * @param {string} value What the user typed.
 * @param {string} [type] The queryable's JSON Schema type.
 * @return {string} The filter.
 */
export function cqlComparison(field, op, value, type) {
  const name = IDENT.test(field) ? field : `"${field.replace(/"/g, '""')}"`;
  if (value.includes("'")) {
    // pygeoapi's CQL text parser has no escape for a quote inside a string
    throw new TypeError(t('noQuote'));
  }
  const quoted = (s) => `'${s}'`;
  if (op === 'LIKE') {
    return `${name} LIKE ${quoted(`%${value}%`)}`;
  }
  if (!['=', '<>', '<', '<=', '>', '>='].includes(op)) {
    throw new TypeError('unknown operator');
  }
  const trimmed = value.trim();
  let literal = quoted(value);
  if ((type === 'integer' || type === 'number') && /^-?\d+(\.\d+)?$/.test(trimmed)) {
    literal = trimmed;
  } else if (type === 'boolean' && /^(true|false)$/i.test(trimmed)) {
    literal = trimmed.toLowerCase();
  }
  return `${name} ${op} ${literal}`;
}

/**
 * Attributes of a queryables document, in its order, without the geometry.
 * @param {Object} queryables The document.
 * @return {Array<{name: string, title: string, type: string}>} The fields.
 */
export function fieldsOf(queryables) {
  const props = queryables && typeof queryables.properties === 'object'
    ? queryables.properties : {};
  return Object.entries(props)
    .filter(([, p]) => p && p['x-ogc-role'] !== 'primary-geometry' &&
      !String(p.format || '').startsWith('geometry'))
    .map(([name, p]) => ({name, title: typeof p.title === 'string' && p.title ? p.title : name,
      type: typeof p.type === 'string' ? p.type : 'string', id: p['x-ogc-role'] === 'id'}));
}

/**
 * A field's value of a feature (the id field is the feature's id, not a property).
 * @param {Object} feature GeoJSON feature.
 * @param {{name: string, id?: boolean}} field The field.
 * @return {*} The value.
 */
function valueOf(feature, field) {
  const props = feature.properties || {};
  return field.id && !(field.name in props) ? feature.id : props[field.name];
}

export class Identify {
  /** @param {Object} portal The portal. */
  constructor(portal) {
    this.portal = portal;
    this.seq = 0;
  }

  /**
   * @param {{pixel: Array<number>, lngLat: Array<number>}} evt The map's click.
   * @return {Promise<Array<Object>>} The layers and features listed.
   */
  async at(evt) {
    const seq = ++this.seq;
    const {map} = this.portal;
    const lib = map.getLibMap();
    const [x, y] = evt.pixel;
    const corners = [[x - TOLERANCE_PX, y + TOLERANCE_PX], [x + TOLERANCE_PX, y - TOLERANCE_PX]]
      .map((p) => Geoplat.ol.toLonLat(lib.getCoordinateFromPixel(p), map.projection));
    const bbox = [corners[0][0], corners[0][1], corners[1][0], corners[1][1]]
      .map((v) => Number(v.toFixed(7)));
    const layers = this.portal.layers.queryable();
    const answers = await Promise.all(layers.map(async (entry) => {
      const [page, queryables] = await Promise.all([
        this.portal.layerJson(entry, '/items',
          {bbox: bbox.join(','), limit: IDENTIFY_LIMIT, f: 'json'}),
        this.portal.queryables(entry)]);
      return {entry, features: page.features || [], fields: fieldsOf(queryables)};
    }).map((p) => p.catch((err) => {
      this.portal.fail(err);
      return null;
    })));
    if (seq !== this.seq) {
      return [];
    }
    const found = answers.filter((a) => a && a.features.length);
    this.show(evt.lngLat, found);
    return found;
  }

  /**
   * @param {Array<number>} lngLat Where.
   * @param {Array<{entry: Object, features: Array<Object>, fields: Array<Object>}>} found What.
   */
  show(lngLat, found) {
    const box = el('div');
    box.id = 'identify';
    if (!found.length) {
      box.append(el('p', t('noFeature'), 'muted'));
    }
    const highlight = [];
    for (const {entry, features, fields} of found) {
      const section = el('section');
      section.dataset.layer = entry.id;
      section.append(el('h3', entry.title));
      for (const feature of features) {
        const dl = el('dl');
        dl.dataset.id = asText(feature.id);
        const props = feature.properties || {};
        const named = fields.length ? fields : Object.keys(props).map((name) => ({name,
          title: name}));
        for (const field of named) {
          if (field.name in props || field.id) {
            dl.append(el('dt', field.title), el('dd', asText(valueOf(feature, field))));
          }
        }
        section.append(dl);
        highlight.push(feature);
      }
      box.append(section);
    }
    this.portal.highlight(highlight, false);
    this.portal.map.openPopup(lngLat, box);
    // selected on the map: selected in the open table too
    const table = this.portal.table;
    const shown = found.find((f) => table.entry && f.entry.id === table.entry.id);
    table.select(shown ? shown.features.map((f) => asText(f.id)) : []);
  }
}

export class AttributeTable {
  /** @param {Object} portal The portal. */
  constructor(portal) {
    this.portal = portal;
    this.entry = null;
    this.fields = [];
    this.filter = '';
    this.offset = 0;
    this.matched = 0;
    this.features = [];
    /** @type {string} `+name`, `-name` or '' (the node's order) */
    this.sort = '';
    $('table-filter').addEventListener('submit', (e) => {
      e.preventDefault();
      this.applyFilter();
    });
    $('tf-clear').addEventListener('click', () => {
      /** @type {HTMLInputElement} */ ($('tf-value')).value = '';
      this.filter = '';
      this.offset = 0;
      this.load();
    });
    $('table-prev').addEventListener('click', () => {
      this.offset = Math.max(0, this.offset - TABLE_PAGE);
      this.load();
    });
    $('table-next').addEventListener('click', () => {
      if (this.offset + TABLE_PAGE < this.matched) {
        this.offset += TABLE_PAGE;
        this.load();
      }
    });
    $('table-close').addEventListener('click', () => {
      $('table-panel').hidden = true;
      this.entry = null;
    });
  }

  /**
   * Opens the table of a layer.
   * @param {Object} entry The layer.
   * @return {Promise<void>} Once the first page is shown.
   */
  async open(entry) {
    this.entry = entry;
    this.filter = '';
    this.sort = '';
    this.offset = 0;
    $('table-panel').hidden = false;
    $('table-panel').dataset.layer = entry.id;
    $('table-title').textContent = entry.title;
    try {
      this.fields = fieldsOf(await this.portal.queryables(entry));
    } catch (err) {
      this.portal.fail(err);
      this.fields = [];
    }
    const select = $('tf-field');
    select.replaceChildren(...this.fields.map((f) => {
      const option = /** @type {HTMLOptionElement} */ (el('option', f.title));
      option.value = f.name;
      return option;
    }));
    await this.load();
  }

  applyFilter() {
    const field = /** @type {HTMLSelectElement} */ ($('tf-field')).value;
    const op = /** @type {HTMLSelectElement} */ ($('tf-op')).value;
    const value = /** @type {HTMLInputElement} */ ($('tf-value')).value;
    const spec = this.fields.find((f) => f.name === field);
    if (!spec) {
      return;
    }
    try {
      this.filter = cqlComparison(field, op, value, spec.type);
    } catch (err) {
      this.portal.fail(err);
      return;
    }
    $('status').textContent = '';
    this.offset = 0;
    this.load();
  }

  /** @return {Promise<void>} The current page, shown. */
  async load() {
    if (!this.entry) {
      return;
    }
    const panel = $('table-panel');
    panel.dataset.loading = 'true';
    const params = {limit: TABLE_PAGE, offset: this.offset, f: 'json'};
    if (this.filter) {
      params.filter = this.filter;
    }
    if (this.sort) {
      params.sortby = this.sort;
    }
    try {
      const page = await this.portal.layerJson(this.entry, '/items', params);
      this.features = page.features || [];
      this.matched = Number.isInteger(page.numberMatched) ? page.numberMatched
        : this.offset + this.features.length;
      this.render();
    } catch (err) {
      this.portal.fail(err);
    } finally {
      panel.dataset.loading = 'false';
      panel.dataset.filter = this.filter;
      panel.dataset.sort = this.sort;
    }
  }

  /**
   * Marks the rows of these feature ids as selected (the others not).
   * @param {Array<string>} ids Feature ids.
   */
  select(ids) {
    $('table-body').querySelectorAll('tr').forEach((tr) => {
      tr.classList.toggle('selected', ids.includes(/** @type {HTMLElement} */ (tr).dataset.id));
    });
  }

  render() {
    const fields = this.fields.length ? this.fields
      : Object.keys((this.features[0] || {}).properties || {}).map((name) => ({name,
        title: name}));
    const head = el('tr');
    head.append(...fields.map((f) => {
      const sorted = this.sort.slice(1) === f.name ? this.sort[0] : '';
      const th = el('th', f.title + (sorted === '+' ? ' ▲' : sorted === '-' ? ' ▼' : ''));
      th.dataset.field = f.name;
      th.tabIndex = 0;
      th.setAttribute('aria-sort', sorted === '+' ? 'ascending'
        : sorted === '-' ? 'descending' : 'none');
      const toggle = () => {
        // none -> ascending -> descending -> none
        this.sort = sorted === '' ? `+${f.name}` : sorted === '+' ? `-${f.name}` : '';
        this.offset = 0;
        this.load();
      };
      th.addEventListener('click', toggle);
      th.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') {
          toggle();
        }
      });
      return th;
    }));
    $('table-head').replaceChildren(head);
    const rows = this.features.map((feature) => {
      const tr = el('tr');
      tr.tabIndex = 0;
      tr.dataset.id = asText(feature.id);
      tr.append(...fields.map((f) => el('td', asText(valueOf(feature, f)))));
      const pick = () => {
        $('table-body').querySelectorAll('tr.selected').forEach((r) =>
          r.classList.remove('selected'));
        tr.classList.add('selected');
        this.portal.highlight([feature], true);
      };
      tr.addEventListener('click', pick);
      tr.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') {
          pick();
        }
      });
      return tr;
    });
    $('table-body').replaceChildren(...rows);
    this.select(this.portal.highlighted ? this.portal.highlighted.map(asText) : []);
    const count = $('table-count');
    count.dataset.matched = String(this.matched);
    count.textContent = t('rows', {n: this.matched, from: this.matched ? this.offset + 1 : 0,
      to: this.offset + this.features.length});
  }
}
