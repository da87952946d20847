/**
 * DOM helpers shared by the pages built on the SDK (hall.js, cadastre.js, portal/): every text
 * from an API goes into the page as text, never as HTML.
 */

/**
 * @param {string} tag Tag name.
 * @param {*} [text] Text content (never parsed as HTML).
 * @param {string} [className] Class.
 * @return {HTMLElement} A new element.
 */
export function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) {
    e.textContent = String(text);
  }
  if (className) {
    e.className = className;
  }
  return e;
}

/**
 * @param {Object<string, Object<string, string>>} texts The UI texts per language.
 * @param {function(): string} lang The language now shown.
 * @return {function(string, Object=): string} A text of the UI's language, `{name}` replaced.
 */
export function translator(texts, lang) {
  return (name, values = {}) =>
    (texts[lang()][name] || name).replace(/\{(\w+)\}/g, (_, k) => String(values[k]));
}
