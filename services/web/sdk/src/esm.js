/**
 * @module geoplat/esm
 * Entry of dist/geoplat.esm.js: the node is where this module was loaded from.
 */
import {setDefaults} from './defaults.js';

setDefaults({scriptUrl: import.meta.url});

export * from './index.js';
