/**
 * @module geoplat/defaults
 * The node and key the SDK uses when a call names none: the node is where the script came
 * from (set by the bundle's entry: `document.currentScript` for the UMD build,
 * `import.meta.url` for the ES module), the key what the page set with `setDefaults`.
 */
import {nodeFromScriptUrl, normaliseNode} from './urls.js';

const state = {node: '', key: ''};

/**
 * @param {{node?: string, key?: string, scriptUrl?: string}} values New defaults.
 */
export function setDefaults(values) {
  if (values.scriptUrl) {
    state.node = nodeFromScriptUrl(values.scriptUrl) || state.node;
  }
  if (values.node) {
    state.node = normaliseNode(values.node);
  }
  if (values.key !== undefined) {
    state.key = String(values.key);
  }
}

/** @return {string} The default node (the page's own origin when nothing else is known). */
export function defaultNode() {
  if (state.node) {
    return state.node;
  }
  return typeof location !== 'undefined' ? location.origin : '';
}

/** @return {string} The default key. */
export function defaultKey() {
  return state.key;
}
