/**
 * The view in the URL's hash, so that a copied link opens the same map:
 * `#c=lon,lat&z=zoom&g=c|w&b=vec|img|ter&lb=0|1&l=id:opacity,id:opacity` (layers bottom to top,
 * as drawn). Everything read back is checked; what does not parse falls back to the default.
 */

const ID = /^[A-Za-z0-9_.-]{1,100}$/;
const MAX_LAYERS = 50;

/**
 * @typedef {Object} View
 * @property {Array<number>} center [lon, lat].
 * @property {number} zoom Level.
 * @property {'c'|'w'} grid The tile grid.
 * @property {'vec'|'img'|'ter'} basemap The base map.
 * @property {boolean} labels Annotation layer shown.
 * @property {Array<{id: string, opacity: number}>} layers Overlays shown, bottom to top.
 */

/**
 * @param {string} hash `location.hash`.
 * @param {View} fallback The default view.
 * @return {View} The view the hash holds.
 */
export function readView(hash, fallback) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const view = {...fallback, layers: [...fallback.layers]};
  const c = (params.get('c') || '').split(',').map(Number);
  if (c.length === 2 && c.every(Number.isFinite) && Math.abs(c[0]) <= 180 &&
      Math.abs(c[1]) <= 90) {
    view.center = c;
  }
  const z = Number(params.get('z'));
  if (params.has('z') && Number.isFinite(z) && z >= 1 && z <= 22) {
    view.zoom = z;
  }
  const g = params.get('g');
  if (g === 'c' || g === 'w') {
    view.grid = g;
  }
  const b = params.get('b');
  if (b === 'vec' || b === 'img' || b === 'ter') {
    view.basemap = b;
  }
  if (params.has('lb')) {
    view.labels = params.get('lb') !== '0';
  }
  if (params.has('l')) {
    view.layers = [];
    for (const part of (params.get('l') || '').split(',').slice(0, MAX_LAYERS)) {
      const [id, op] = part.split(':');
      const opacity = op === undefined ? 1 : Number(op);
      if (ID.test(id || '') && Number.isFinite(opacity) && opacity >= 0 && opacity <= 1 &&
          !view.layers.some((l) => l.id === id)) {
        view.layers.push({id, opacity});
      }
    }
  }
  return view;
}

/**
 * @param {View} view The view.
 * @return {string} Its hash (with `#`).
 */
export function writeView(view) {
  // 7 decimals: 1 cm, finer than a pixel at level 20 (0.13 m/px)
  const parts = [`c=${view.center[0].toFixed(7)},${view.center[1].toFixed(7)}`,
    `z=${Number(view.zoom.toFixed(4))}`, `g=${view.grid}`, `b=${view.basemap}`,
    `lb=${view.labels ? 1 : 0}`];
  if (view.layers.length) {
    parts.push('l=' + view.layers.map((l) => `${l.id}:${Number(l.opacity.toFixed(2))}`)
      .join(','));
  }
  return '#' + parts.join('&');
}
