/**
 * The service-status page (服务状态监控, issue 16) at every node's `/status`: an application
 * of the SDK's page kit, built by build.mjs into dist/status.js (served as /sdk/status.js).
 *
 * - The federation below this node, from `GET /registry/api/health` (what it answers this
 *   caller), polled every POLL_MS without reloading: each node's health, latency, when it was
 *   checked and since when its status holds, its services counted by health; a node's services
 *   (its records in the catalogue, `/ogc/collections/catalogue/items?origin_node=`, as the
 *   records API filters them for this caller) on demand.
 * - For this node's administrators (`/auth/me` roles): the review queue (`GET
 *   /registry/api/services?status=pending`) with approve / reject (`POST
 *   /registry/api/services/{id}/{action}`: JSON from this page's own Origin, which the node's
 *   CSRF guard accepts). Anonymous users and others never see it.
 * - For them too, data supply between tiers (issue 18): per supply link this node sends or
 *   takes on (`GET /api/supply`) the versions accepted and built, its change-sets by state and
 *   the last failure; the change-sets waiting for review (`GET /api/supply/changesets`:
 *   pending, conflict) with their problems, accepted or rejected (with a reason) from here.
 *
 * `window.statusPage` is there for the browser tests.
 */
import {el} from '../dom.js';
import {$, NodeClient, formatTime, language, readConfig} from '../pagekit.js';
import TEXT from './texts.js';

const POLL_MS = 2000;
const SERVICES_SHOWN = 100;
const HEALTH = ['up', 'degraded', 'down', 'unknown'];
const {t, apply, toggle} = language(TEXT);

/**
 * @param {string} health A health value.
 * @return {HTMLElement} Its badge.
 */
function badge(health) {
  const h = HEALTH.includes(health) ? health : 'unknown';
  const b = el('span', t(h), `badge h-${h}`);
  b.dataset.health = h;
  return b;
}

class StatusPage {
  constructor(config) {
    this.config = config;
    this.nodeId = config.id;
    this.client = new NodeClient(config.node);
    this.open = new Set(); // nodes whose services are shown
    this.tree = null;
    this.services = new Map(); // node id -> its records page (open nodes)
    this.queue = null; // pending records (admins), else null
    this.supply = null; // the node's supply links (admins), else null
    this.waiting = []; // change-sets waiting for review (admins)
    this.polls = 0;
    this.refreshedAt = null;
    this.timer = null;
  }

  async start() {
    apply();
    $('lang').addEventListener('click', () => {
      toggle();
      this.render();
    });
    await this.client.whoami();
    this.admin = this.client.isAdmin(this.nodeId);
    $('queue-section').hidden = !this.admin;
    $('supply-section').hidden = !this.admin;
    await this.refresh();
    document.body.dataset.ready = 'true';
  }

  /** One poll: the tree, the open nodes' services, the queue; then the next poll. */
  async refresh() {
    clearTimeout(this.timer);
    try {
      const answer = await this.client.get('/registry/api/health');
      this.tree = answer.tree || null;
      await Promise.all([...this.open].map((id) => this.loadServices(id)));
      if (this.admin) {
        const pending = await this.client.get('/registry/api/services', {status: 'pending'});
        this.queue = Array.isArray(pending.services) ? pending.services : [];
        this.supply = await this.client.get('/api/supply');
        const all = await this.client.get('/api/supply/changesets');
        this.waiting = (Array.isArray(all.changesets) ? all.changesets : [])
            .filter((c) => c.state === 'pending' || c.state === 'conflict');
      }
      this.polls++;
      this.refreshedAt = new Date().toISOString();
      $('error').textContent = '';
    } catch (err) {
      this.fail(err);
    }
    this.render();
    this.timer = setTimeout(() => this.refresh(), POLL_MS);
  }

  async loadServices(id) {
    try {
      this.services.set(id, await this.client.get('/ogc/collections/catalogue/items',
        {origin_node: id, limit: SERVICES_SHOWN, f: 'json'}));
    } catch (err) {
      this.services.delete(id);
      this.fail(err);
    }
  }

  fail(err) {
    const e = /** @type {any} */ (err);
    $('error').textContent = t('error') + (e && e.message || String(err));
  }

  render() {
    const refreshed = $('refreshed');
    refreshed.textContent = this.refreshedAt ?
      t('refreshed', {time: formatTime(this.refreshedAt)}) : t('refreshing');
    refreshed.dataset.polls = String(this.polls);
    const list = $('tree');
    list.replaceChildren(...(this.tree ? [this.nodeItem(this.tree)] : []));
    if (this.admin) {
      this.renderQueue();
      this.renderSupply();
    }
  }

  renderSupply() {
    const s = this.supply || {sends: [], receives: []};
    const states = (c) => Object.keys(c || {}).sort()
        .map((k) => `${t('cs_' + k) || k} ${Number(c[k])}`).join(' · ') || '—';
    const links = [];
    for (const l of s.sends || []) {
      const tr = el('tr');
      tr.dataset.link = `sends:${l.layer}:${l.parent}`;
      const last = l.last || {};
      tr.append(el('td', t('sends', {layer: l.layer, node: l.parent, to: l.parent_layer})),
        el('td', l.accepted_version == null ? '—' : `v${l.accepted_version}`),
        el('td', l.built_version == null ? '—' : `v${l.built_version}`),
        el('td', states(l.changesets)), el('td', last.last_error || '', 'url'));
      links.push(tr);
    }
    for (const l of s.receives || []) {
      const tr = el('tr');
      tr.dataset.link = `takes:${l.layer}:${l.child}`;
      tr.append(el('td', t('takes', {layer: l.layer, node: l.child, to: l.parent_layer})),
        el('td', l.accepted_version == null ? '—' : `v${l.accepted_version}`), el('td', '—'),
        el('td', states(l.changesets) + (l.auto_accept ? ` (${t('auto')})` : '')), el('td'));
      links.push(tr);
    }
    $('supply-body').replaceChildren(...links);
    $('supply-empty').hidden = links.length > 0;
    const shape = JSON.stringify([document.documentElement.lang,
      this.waiting.map((c) => [c.id, c.state])]);
    if (shape === this.waitingShape) {
      return; // the same change-sets: the reason typed stays between polls
    }
    this.waitingShape = shape;
    const rows = this.waiting.map((c) => {
      const tr = el('tr');
      tr.dataset.id = String(c.id);
      tr.dataset.state = String(c.state);
      const n = c.counts || {};
      const actions = el('td');
      if (c.state === 'pending') {
        const accept = el('button', t('accept'), 'accept');
        accept.type = 'button';
        accept.addEventListener('click', () => this.decideSupply(c, 'accept', accept));
        actions.append(accept);
      }
      const reason = el('input', undefined, 'reason');
      reason.type = 'text';
      reason.placeholder = t('reason');
      reason.setAttribute('aria-label', t('reason'));
      const reject = el('button', t('reject'), 'reject');
      reject.type = 'button';
      reject.addEventListener('click', () => this.decideSupply(c, 'reject', reject,
          reason.value));
      actions.append(reason, reject);
      tr.append(el('td', String(c.id).slice(0, 12)), el('td', c.child),
        el('td', `${c.layer} v${c.new_version} → ${c.parent_layer}`),
        el('td', `+${Number(n.insert || 0)} ~${Number(n.update || 0)} -${Number(n.delete || 0)}`),
        el('td', t('cs_' + c.state) || c.state), actions);
      return tr;
    });
    $('waiting-body').replaceChildren(...rows);
    $('waiting-empty').hidden = rows.length > 0;
  }

  /**
   * @param {Object} cs A change-set waiting for review.
   * @param {'accept'|'reject'} action The decision.
   * @param {HTMLButtonElement} button Its button.
   * @param {string=} reason Why (a rejection).
   */
  async decideSupply(cs, action, button, reason) {
    if (action === 'reject' && !(reason || '').trim()) {
      $('error').textContent = t('needReason');
      return;
    }
    button.disabled = true;
    try {
      const out = await this.client.post(
          `/api/supply/changesets/${encodeURIComponent(cs.id)}/${action}`,
          action === 'reject' ? {reason: reason.trim()} : {});
      $('note').textContent = t(action === 'accept' ? 'csAccepted' : 'csRejected',
          {id: String(out.id || cs.id).slice(0, 12), version: out.applied_version});
      await this.refresh();
    } catch (err) {
      button.disabled = false;
      this.fail(err);
    }
  }

  /**
   * @param {Object} node A node of the health tree.
   * @return {HTMLElement} Its item, its children nested.
   */
  nodeItem(node) {
    const li = el('li', undefined, 'node');
    const id = String(node.id);
    li.dataset.node = id;
    li.dataset.health = HEALTH.includes(node.health) ? node.health : 'unknown';
    const row = el('div', undefined, 'row');
    row.append(badge(node.health), el('strong', id, 'name'));
    if (node.url) {
      row.append(el('span', node.url, 'muted url'));
    }
    row.append(el('span', Number.isFinite(node.latency_ms) ?
      t('latency', {ms: Math.round(node.latency_ms)}) : t('noLatency'), 'latency'));
    row.append(el('span', t('checked', {time: formatTime(node.checked)}), 'checked'));
    row.append(el('span', t('changed', {time: formatTime(node.changed)}), 'changed'));
    const counts = node.services && typeof node.services === 'object' ? node.services : {};
    const parts = HEALTH.filter((h) => counts[h]).map((h) => `${t(h)} ${Number(counts[h])}`);
    row.append(el('span', parts.length ? t('services', {counts: parts.join(' · ')}) :
      t('noCounts'), 'counts'));
    const shown = this.open.has(id);
    const button = el('button', t(shown ? 'hideServices' : 'showServices'), 'toggle');
    button.type = 'button';
    button.setAttribute('aria-expanded', String(shown));
    button.addEventListener('click', async () => {
      if (this.open.has(id)) {
        this.open.delete(id);
        this.render();
      } else {
        this.open.add(id);
        await this.loadServices(id);
        this.render();
      }
    });
    row.append(button);
    li.append(row);
    if (shown && this.services.has(id)) {
      li.append(this.servicesTable(this.services.get(id)));
    }
    const children = Array.isArray(node.children) ? node.children : [];
    if (children.length) {
      const ul = el('ul');
      ul.append(...children.map((c) => this.nodeItem(c)));
      li.append(ul);
    }
    return li;
  }

  /**
   * @param {Object} page The node's records (a FeatureCollection).
   * @return {HTMLElement} Their table: title, type, access, health, latency, checked, since.
   */
  servicesTable(page) {
    const features = Array.isArray(page.features) ? page.features : [];
    if (!features.length) {
      return el('p', t('noServices'), 'muted services-none');
    }
    const table = el('table', undefined, 'services');
    const head = el('tr');
    for (const c of ['colTitle', 'colType', 'colAccess', 'colHealth', 'colLatency',
      'colChecked', 'colChanged']) {
      head.append(el('th', t(c)));
    }
    table.append(el('thead'));
    table.tHead.append(head);
    const body = el('tbody');
    for (const f of features) {
      const p = f.properties || {};
      const tr = el('tr');
      tr.dataset.id = String(f.id);
      tr.dataset.health = HEALTH.includes(p.health) ? p.health : 'unknown';
      const health = el('td');
      health.append(badge(p.health));
      tr.append(el('td', p.title), el('td', p.type), el('td', t(p.access) || p.access), health,
        el('td', Number.isFinite(p.latency_ms) ? `${Math.round(p.latency_ms)} ms` : '—'),
        el('td', formatTime(p.health_checked)), el('td', formatTime(p.health_changed)));
      body.append(tr);
    }
    table.append(body);
    const more = Number(page.numberMatched) - features.length;
    if (more > 0) {
      const wrap = el('div');
      wrap.append(table, el('p', t('moreServices', {n: more}), 'muted'));
      return wrap;
    }
    return table;
  }

  renderQueue() {
    const body = $('queue-body');
    const shape = JSON.stringify([document.documentElement.lang,
      (this.queue || []).map((r) => [r.id, r.version])]);
    if (shape === this.queueShape) {
      return; // the same queue: its buttons stay as they are between polls
    }
    this.queueShape = shape;
    const rows = (this.queue || []).map((rec) => {
      const tr = el('tr');
      tr.dataset.id = String(rec.id);
      const actions = el('td');
      for (const action of ['approve', 'reject']) {
        const b = el('button', t(action), action);
        b.type = 'button';
        b.addEventListener('click', () => this.decide(rec, action, b));
        actions.append(b);
      }
      tr.append(el('td', rec.title), el('td', rec.type), el('td', rec.origin_node),
        el('td', rec.url, 'url'), el('td', t(rec.access) || rec.access), actions);
      return tr;
    });
    body.replaceChildren(...rows);
    $('queue-empty').hidden = rows.length > 0;
  }

  /**
   * @param {Object} rec A pending record.
   * @param {'approve'|'reject'} action The decision.
   * @param {HTMLButtonElement} button Its button.
   */
  async decide(rec, action, button) {
    button.disabled = true;
    try {
      const out = await this.client.post(
        `/registry/api/services/${encodeURIComponent(rec.id)}/${action}`);
      $('note').textContent = t(action === 'approve' ? 'approved' : 'rejected',
        {title: out.title || rec.title});
      await this.refresh();
    } catch (err) {
      button.disabled = false;
      this.fail(err);
    }
  }
}

const page = new StatusPage(readConfig('status-config'));
/** @type {any} */ (window).statusPage = page;
page.start().catch((err) => page.fail(err));
