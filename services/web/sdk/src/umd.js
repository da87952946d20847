/**
 * @module geoplat/umd
 * Entry of dist/geoplat.js (UMD, global `Geoplat`): the node is where this script was loaded
 * from. `document.currentScript` is only set while a classic script runs, so it is read now.
 */
import {setDefaults} from './defaults.js';

if (typeof document !== 'undefined' && document.currentScript &&
    /** @type {HTMLScriptElement} */ (document.currentScript).src) {
  setDefaults({scriptUrl: /** @type {HTMLScriptElement} */ (document.currentScript).src});
}

export * from './index.js';
