/**
 * @module geoplat/css
 * OpenLayers' stylesheet and the popup's, put into the page once (so one <script> is enough).
 */
import olCss from 'ol/ol.css';

const EXTRA = '.geoplat-popup[data-open="false"]{display:none}';

let done = false;

/** Adds the stylesheet to the document (once). */
export function injectCss() {
  if (done || typeof document === 'undefined') {
    return;
  }
  done = true;
  const style = document.createElement('style');
  style.dataset.geoplat = 'ol';
  style.textContent = olCss + EXTRA;
  (document.head || document.documentElement).appendChild(style);
}
