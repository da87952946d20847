/**
 * The print sheet shared by the cadastral map page (cadastre.js) and the portal (portal/print.js):
 * paper size and orientation as `@page` CSS, the map drawn again at print resolution (the
 * map's element enlarged off screen to the frame's size at PRINT_DPI, the canvases of the
 * OpenLayers layers composed into one image), its scale bar and scale, a north arrow and the
 * date. The page prints it with window.print() (or Playwright's page.pdf()); `beforeprint`
 * prepares it when the browser's own print command is used.
 *
 * The sheet's elements have fixed ids: #print-sheet holds #print-frame (with #print-map, the
 * image, #print-north and #print-scale: #print-scale-bar, #print-scale-text), #print-date.
 */

const SVG = 'http://www.w3.org/2000/svg';
export const PRINT_DPI = 150;
const MAX_SIDE_PX = 2600;  // the longest side of the printed map image at most
const MARGIN_MM = 12;
const RENDER_TIMEOUT_MS = 30000;  // a tile that never answers does not hold the sheet forever

/** Paper sizes in millimetres (portrait: width, height). */
export const PAPER = {A4: [210, 297], A3: [297, 420]};

/**
 * The sheet's geometry for a paper.
 * @param {string} paper `A4` or `A3`.
 * @param {string} orientation `portrait` or `landscape`.
 * @return {{paper: string, orientation: string, page: Array<number>, frame: Array<number>}}
 *   Page and map frame sizes in mm (width, height).
 */
export function sheetLayout(paper, orientation) {
  const name = PAPER[paper] ? paper : 'A4';
  const turn = orientation === 'landscape' ? 'landscape' : 'portrait';
  const [w, h] = turn === 'landscape' ? [...PAPER[name]].reverse() : PAPER[name];
  const width = w - 2 * MARGIN_MM;
  const inner = h - 2 * MARGIN_MM;
  // portrait: a 10:7 frame (A4: 186 x 130 mm) leaves room for a list below; landscape: the
  // page's height but title, legend, notes (about 62 mm)
  const height = turn === 'portrait' ? Math.round(width * 0.7) : inner - 62;
  return {paper: name, orientation: turn, page: [w, h], frame: [width, height]};
}

/**
 * The print CSS of a layout: `@page`, and in print media the sheet alone.
 * @param {{paper: string, orientation: string, frame: Array<number>}} layout The layout.
 * @return {string} CSS.
 */
export function printCss(layout) {
  const [fw, fh] = layout.frame;
  return `#print-sheet { display: none; }
@page { size: ${layout.paper} ${layout.orientation}; margin: ${MARGIN_MM}mm; }
@media print {
  html, body { height: auto !important; display: block !important; font-size: 11pt;
    overflow: visible !important; }
  body > *:not(#print-sheet) { display: none !important; }
  #print-sheet { display: block; }
  #print-sheet h1 { font-size: 18pt; margin: 0 0 2mm; overflow-wrap: anywhere; }
  #print-frame { position: relative; border: 1px solid #333; width: ${fw}mm; height: ${fh}mm; }
  #print-map { display: block; width: 100%; height: 100%; object-fit: contain; }
  #print-north { position: absolute; top: 3mm; right: 3mm; width: 12mm; height: 18mm;
    background: rgba(255, 255, 255, 0.8); }
  #print-scale { position: absolute; left: 3mm; bottom: 3mm; background: rgba(255,255,255,.85);
    padding: 1mm 2mm; font-size: 9pt; }
  #print-scale-bar { height: 2mm; border: 1px solid #000; border-top: 0; margin-bottom: 1mm; }
  #print-meta { display: flex; flex-wrap: wrap; gap: 2mm 8mm; margin: 2mm 0; font-size: 10pt; }
  #print-legend { list-style: none; padding: 0; margin: 2mm 0; display: flex; flex-wrap: wrap;
    gap: 1mm 6mm; font-size: 9pt; }
  #print-legend span.swatch { display: inline-block; width: 5mm; height: 3mm; margin-right: 1mm;
    border: 1px solid #333; vertical-align: middle; print-color-adjust: exact;
    -webkit-print-color-adjust: exact; }
  #print-notice { font-size: 9pt; color: #333; border-top: 1px solid #999; padding-top: 1mm; }
}`;
}

/**
 * Writes the print CSS of a paper into the page (one <style id="print-css">).
 * @param {string} paper `A4` or `A3`.
 * @param {string} orientation `portrait` or `landscape`.
 * @return {ReturnType<typeof sheetLayout>} The layout.
 */
export function usePaper(paper, orientation) {
  const layout = sheetLayout(paper, orientation);
  let style = document.getElementById('print-css');
  if (!style) {
    style = document.createElement('style');
    style.id = 'print-css';
    document.head.append(style);
  }
  style.textContent = printCss(layout);
  document.body.dataset.paper = `${layout.paper} ${layout.orientation}`;
  return layout;
}

/** @return {SVGSVGElement} The north arrow (#print-north). */
export function northArrow() {
  const svg = /** @type {SVGSVGElement} */ (document.createElementNS(SVG, 'svg'));
  svg.id = 'print-north';
  svg.setAttribute('viewBox', '0 0 40 60');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'N');
  const part = (tag, attrs, text) => {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) {
      e.setAttribute(k, v);
    }
    if (text) {
      e.textContent = text;
    }
    svg.append(e);
  };
  part('polygon', {points: '20,4 32,44 20,36 8,44', fill: '#000'});
  part('polygon', {points: '20,4 20,36 8,44', fill: '#fff', stroke: '#000',
    'stroke-width': '1.5'});
  part('text', {x: '20', y: '58', 'font-size': '14', 'text-anchor': 'middle',
    'font-family': 'sans-serif'}, 'N');
  return svg;
}

/**
 * The map frame: #print-frame with #print-map, the north arrow and the scale bar.
 * @return {HTMLElement} The frame.
 */
export function mapFrame() {
  const frame = document.createElement('div');
  frame.id = 'print-frame';
  const img = document.createElement('img');
  img.id = 'print-map';
  img.alt = '';
  const scale = document.createElement('div');
  scale.id = 'print-scale';
  const bar = document.createElement('div');
  bar.id = 'print-scale-bar';
  const text = document.createElement('span');
  text.id = 'print-scale-text';
  scale.append(bar, text);
  frame.append(img, northArrow(), scale);
  return frame;
}

/**
 * @param {number} metres A length.
 * @return {number} The largest 1, 2 or 5 times a power of ten not above it.
 */
export function niceLength(metres) {
  const p = 10 ** Math.floor(Math.log10(metres));
  return [5, 2, 1].map((m) => m * p).find((v) => v <= metres) || p;
}

/**
 * The canvases of an OpenLayers map composed into one (white below), as a PNG data URL.
 * @param {Object} olMap The OpenLayers map (rendered).
 * @return {{url: string, width: number, height: number}} The image.
 */
export function composeMap(olMap) {
  const size = olMap.getSize();
  const canvas = document.createElement('canvas');
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(size[0] * ratio);
  canvas.height = Math.round(size[1] * ratio);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  olMap.getViewport().querySelectorAll('.ol-layer canvas, canvas.ol-layer').forEach((c) => {
    if (!c.width) {
      return;
    }
    const opacity = c.parentNode.style.opacity || c.style.opacity;
    ctx.globalAlpha = opacity === '' ? 1 : Number(opacity);
    const m = /^matrix\(([^)]*)\)$/.exec(c.style.transform || '');
    const matrix = m ? m[1].split(',').map(Number)
      : [parseFloat(c.style.width) / c.width || 1, 0, 0,
        parseFloat(c.style.height) / c.height || 1, 0, 0];
    ctx.setTransform(matrix[0] * ratio, matrix[1], matrix[2], matrix[3] * ratio,
      matrix[4] * ratio, matrix[5] * ratio);
    ctx.drawImage(c, 0, 0);
  });
  ctx.globalAlpha = 1;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  return {url: canvas.toDataURL('image/png'), width: canvas.width, height: canvas.height};
}

/** @return {Promise<void>} Once the map has rendered with every tile loaded (or timed out). */
function rendered(olMap) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, RENDER_TIMEOUT_MS);
    olMap.once('rendercomplete', () => {
      clearTimeout(timer);
      resolve();
    });
    olMap.render();
  });
}

/**
 * Draws the map again at print resolution (the frame's size at PRINT_DPI, the view's centre
 * and the extent now shown kept in it), composes it into #print-map and sets the scale bar
 * and the date; then the map as it was. Resolves once the image is decoded.
 * @param {Object} map The SDK's map (getLibMap, projection, getCenter).
 * @param {Array<number>} frameMm The frame's width and height in mm.
 * @param {{scaleWord: string, alt: string}} texts The word for scale, the image's text.
 * @return {Promise<{width: number, height: number, scale: number}>} The image's size, the scale.
 */
export async function prepareSheet(map, frameMm, texts) {
  const olMap = map.getLibMap();
  const view = olMap.getView();
  const target = /** @type {HTMLElement} */ (olMap.getTargetElement());
  const before = {style: target.getAttribute('style'), center: view.getCenter(),
    resolution: view.getResolution(), size: olMap.getSize()};
  const extent = view.calculateExtent(before.size);
  let w = Math.round(frameMm[0] / 25.4 * PRINT_DPI);
  let h = Math.round(frameMm[1] / 25.4 * PRINT_DPI);
  const shrink = Math.min(1, MAX_SIDE_PX / Math.max(w, h));
  w = Math.round(w * shrink);
  h = Math.round(h * shrink);
  let image;
  let resolution;
  try {
    // off screen, at the frame's size: the map draws itself anew for it
    target.style.cssText = `position: fixed; left: -${w + 100}px; top: 0; width: ${w}px; ` +
      `height: ${h}px; flex: none;`;
    olMap.updateSize();
    view.fit(extent, {size: [w, h], nearest: false});
    await rendered(olMap);
    resolution = view.getResolution();
    image = composeMap(olMap);
  } finally {
    if (before.style === null) {
      target.removeAttribute('style');
    } else {
      target.setAttribute('style', before.style);
    }
    olMap.updateSize();
    view.setCenter(before.center);
    view.setResolution(before.resolution);
  }
  const img = /** @type {HTMLImageElement} */ (document.getElementById('print-map'));
  img.src = image.url;
  img.alt = texts.alt;
  await img.decode();
  // the printed image fills the frame (object-fit: contain)
  const ratio = window.devicePixelRatio || 1;
  const shownMm = Math.min(frameMm[0], frameMm[1] * image.width / image.height);
  const lat = map.getCenter()[1];
  const metresPerPixel = resolution * map.projection.getMetersPerUnit() *
    Math.cos(lat * Math.PI / 180) / ratio;
  const scale = metresPerPixel * image.width / (shownMm / 1000);
  const bar = niceLength(scale * 0.03);  // about 3 cm on paper
  document.getElementById('print-scale-bar').style.width = `${(bar / scale) * 1000}mm`;
  document.getElementById('print-scale-text').textContent =
    `${bar >= 1000 ? `${bar / 1000} km` : `${bar} m`} · ${texts.scaleWord} ` +
    `1:${Math.round(scale).toLocaleString('en-US')}`;
  document.getElementById('print-date').textContent =
    new Date().toLocaleDateString('sv-SE');  // YYYY-MM-DD, local
  document.body.dataset.print = 'ready';
  return {width: image.width, height: image.height, scale};
}

/**
 * The browser's own print command prepares the sheet first (unless it is ready); after
 * printing it is stale again.
 * @param {function(): Promise<any>} prepare What prepares it.
 */
export function bindPrintEvents(prepare) {
  window.addEventListener('beforeprint', () => {
    if (document.body.dataset.print !== 'ready') {
      prepare().catch(() => {});
    }
  });
  window.addEventListener('afterprint', () => {
    delete document.body.dataset.print;
  });
}
