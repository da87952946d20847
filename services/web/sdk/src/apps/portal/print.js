/**
 * 打印 (print to PDF): a dialog (A4/A3, portrait/landscape, a title, the map review number
 * 审图号) and a print sheet (../printsheet.js, shared with the cadastral map page): the map
 * drawn again at print resolution, scale bar, north arrow, the legend of the shown layers
 * (their colour and title), the base map, the date and the notice that the sample data are
 * synthetic and not reviewed as maps of China; printed with window.print() and `@page` CSS.
 */
import {$, addTexts, el, t} from './dom.js';
import {bindPrintEvents, mapFrame, prepareSheet, usePaper} from '../printsheet.js';

addTexts({
  zh: {print: '打印', printTitle: '标题', paper: '纸张', orientation: '方向', portrait: '纵向', landscape: '横向',
    reviewNo: '审图号', reviewNone: '无（样例数据，未送审）', printDate: '制图日期',
    printBasemap: '底图', scale: '比例尺', printGo: '打印', cancel: '取消',
    printNotice: '合成样例数据，未经审核，不作为中国地图使用。', printCrs: '坐标系'},
  en: {print: 'Print', printTitle: 'Title', paper: 'Paper', orientation: 'Orientation', portrait: 'Portrait',
    landscape: 'Landscape', reviewNo: 'Map review no. (审图号)',
    reviewNone: 'none (sample data, not reviewed)', printDate: 'Date',
    printBasemap: 'Base map', scale: 'Scale', printGo: 'Print', cancel: 'Cancel',
    printNotice: 'Synthetic sample data, not reviewed: not to be used as a map of China.',
    printCrs: 'Coordinate system'},
});

const labelled = (text, input) => {
  const label = el('label', `${text} `);
  label.append(input);
  return label;
};

export default class PrintSheet {
  /** @param {Object} portal The portal. */
  constructor(portal) {
    this.portal = portal;
    this.layout = usePaper('A4', 'portrait');
    this.build();
    bindPrintEvents(() => this.prepare());
  }

  build() {
    const open = /** @type {HTMLButtonElement} */ (el('button', t('print')));
    open.type = 'button';
    open.id = 'print-open';
    open.dataset.i18n = 'print';
    open.addEventListener('click', () => this.open());
    document.querySelector('#map .tools').insertBefore(open, $('share'));
    // the dialog
    const dialog = /** @type {HTMLDialogElement} */ (el('dialog'));
    dialog.id = 'print-dialog';
    const form = el('form');
    form.setAttribute('method', 'dialog');
    const select = (id, options) => {
      const s = /** @type {HTMLSelectElement} */ (el('select'));
      s.id = id;
      s.append(...options.map(([value, text]) => {
        const o = /** @type {HTMLOptionElement} */ (el('option', text));
        o.value = value;
        return o;
      }));
      return s;
    };
    const paper = select('print-paper', [['A4', 'A4'], ['A3', 'A3']]);
    const turn = select('print-orientation', [['portrait', t('portrait')],
      ['landscape', t('landscape')]]);
    const title = /** @type {HTMLInputElement} */ (el('input'));
    title.id = 'print-title-input';
    title.maxLength = 100;
    title.value = this.portal.config.title || '';
    const review = /** @type {HTMLInputElement} */ (el('input'));
    review.id = 'print-review-input';
    review.maxLength = 60;
    review.placeholder = t('reviewNone');
    const go = /** @type {HTMLButtonElement} */ (el('button', t('printGo')));
    go.type = 'button';
    go.id = 'print-go';
    go.addEventListener('click', () => {
      this.prepare().then(() => {
        dialog.close();
        window.print();
      }, (err) => this.portal.fail(err));
    });
    const cancel = /** @type {HTMLButtonElement} */ (el('button', t('cancel')));
    cancel.type = 'button';
    cancel.addEventListener('click', () => dialog.close());
    for (const e of [paper, turn, title, review]) {
      e.addEventListener('change', () => {
        delete document.body.dataset.print;  // the sheet is stale
      });
    }
    form.append(el('h2', t('print')), labelled(t('paper'), paper),
      labelled(t('orientation'), turn), labelled(t('printTitle'), title),
      labelled(t('reviewNo'), review), go, cancel);
    dialog.append(form);
    document.body.append(dialog);
    // the sheet (shown in print media only)
    const sheet = el('div');
    sheet.id = 'print-sheet';
    const h1 = el('h1');
    h1.id = 'print-title';
    const legend = el('ul');
    legend.id = 'print-legend';
    const meta = el('div');
    meta.id = 'print-meta';
    const notice = el('p');
    notice.id = 'print-notice';
    sheet.append(h1, mapFrame(), legend, meta, notice);
    document.body.append(sheet);
    const style = el('style', `#print-dialog form { display: grid; gap: 6px; min-width: 260px; }
#print-dialog h2 { font-size: 16px; margin: 0; }
#print-dialog input { width: 100%; }`);
    document.head.append(style);
  }

  open() {
    const dialog = /** @type {HTMLDialogElement} */ ($('print-dialog'));
    if (!dialog.open) {
      dialog.showModal();
    }
  }

  /**
   * Sets the dialog's choices (for scripts and tests): any of paper, orientation, title,
   * review.
   * @param {{paper?: string, orientation?: string, title?: string, review?: string}} choice
   */
  choose(choice) {
    const set = (id, v) => {
      if (v !== undefined) {
        /** @type {HTMLInputElement} */ ($(id)).value = v;
      }
    };
    set('print-paper', choice.paper);
    set('print-orientation', choice.orientation);
    set('print-title-input', choice.title);
    set('print-review-input', choice.review);
    delete document.body.dataset.print;
  }

  /**
   * Fills the sheet from the dialog's choices and the map now shown.
   * @return {Promise<{width: number, height: number, scale: number, paper: string}>} The map
   *   image's size, its scale and the paper.
   */
  async prepare() {
    const value = (id) => /** @type {HTMLInputElement} */ ($(id)).value.trim();
    this.layout = usePaper(value('print-paper'), value('print-orientation'));
    $('print-title').textContent = value('print-title-input') || this.portal.config.title || '';
    const legend = $('print-legend');
    legend.replaceChildren(...this.portal.layers.visible().map((entry) => {
      const li = el('li');
      li.dataset.layer = entry.id;
      const swatch = el('span', undefined, 'swatch');
      swatch.style.backgroundColor = entry.color;
      li.append(swatch, el('span', entry.title));
      return li;
    }));
    const view = this.portal.view;
    const item = (name, text) => {
      const span = el('span', `${t(name)}: `);
      span.append(text);
      return span;
    };
    const date = el('span');
    date.id = 'print-date';
    const review = el('span', value('print-review-input') || t('reviewNone'));
    review.id = 'print-review-no';
    const basemap = `${t(view.basemap)}${view.labels ? ` + ${t('labels')}` : ''}`;
    $('print-meta').replaceChildren(item('printDate', date), item('reviewNo', review),
      item('printBasemap', basemap), item('printCrs', this.portal.grid === 'w'
        ? 'Web Mercator (EPSG:3857)' : 'CGCS2000 (EPSG:4490)'),
      el('span', this.portal.config.title || ''));
    $('print-notice').textContent = t('printNotice');
    const info = await prepareSheet(this.portal.map, this.layout.frame,
      {scaleWord: t('scale'), alt: $('print-title').textContent});
    return {...info, paper: `${this.layout.paper} ${this.layout.orientation}`};
  }
}
