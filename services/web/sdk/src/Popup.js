/**
 * @module geoplat/Popup
 * One popup per map: an OpenLayers overlay holding text (set as text, never as HTML) or an
 * element the page made itself.
 */
import Overlay from 'ol/Overlay.js';

export default class Popup {
  constructor() {
    const element = document.createElement('div');
    element.className = 'geoplat-popup';
    element.setAttribute('role', 'dialog');
    element.style.cssText = 'background:#fff;border:1px solid #888;border-radius:4px;' +
      'padding:6px 24px 6px 8px;font:13px sans-serif;min-width:80px;max-width:320px;' +
      'box-shadow:0 1px 4px rgba(0,0,0,.3);position:relative;white-space:normal';
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'geoplat-popup-close';
    close.textContent = '×';
    close.setAttribute('aria-label', 'close');
    close.style.cssText = 'position:absolute;top:2px;right:4px;border:0;background:none;' +
      'font-size:16px;cursor:pointer';
    close.addEventListener('click', () => this.close());
    this.content = document.createElement('div');
    this.content.className = 'geoplat-popup-content';
    element.append(close, this.content);
    this.element = element;
    this.overlay = new Overlay({element, positioning: 'bottom-center', offset: [0, -12],
      stopEvent: true, autoPan: {animation: {duration: 200}}});
  }

  /**
   * Opens the popup.
   * @param {import('ol/coordinate.js').Coordinate} coordinate In the map projection.
   * @param {string|Node} content Text, or a node the page built.
   */
  open(coordinate, content) {
    if (content instanceof Node) {
      this.content.replaceChildren(content);
    } else {
      this.content.textContent = String(content ?? '');
    }
    this.overlay.setPosition(coordinate);
    this.element.dataset.open = 'true';
  }

  close() {
    this.overlay.setPosition(undefined);
    this.element.dataset.open = 'false';
  }

  /** @return {boolean} Whether it is open. */
  isOpen() {
    return this.overlay.getPosition() !== undefined;
  }

  /** @return {string} The text shown. */
  getText() {
    return this.content.textContent || '';
  }
}
