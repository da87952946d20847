/**
 * @module geoplat/style
 * Plain style options -> OpenLayers styles (an ol Style or a style function passes through).
 */
import CircleStyle from 'ol/style/Circle.js';
import Fill from 'ol/style/Fill.js';
import Icon from 'ol/style/Icon.js';
import Stroke from 'ol/style/Stroke.js';
import Style from 'ol/style/Style.js';
import Text from 'ol/style/Text.js';

/**
 * @typedef {Object} StyleOptions
 * @property {string} [color] Stroke colour (lines, outlines, point outlines). Default `#1a6dd6`.
 * @property {number} [width] Stroke width in pixels. Default 2.
 * @property {string} [fillColor] Fill of polygons, circles and points. Default translucent.
 * @property {number} [radius] Point radius in pixels. Default 6.
 * @property {string} [icon] Image URL of point symbols (instead of a circle).
 * @property {string} [label] Property whose value labels each feature.
 */

export const DEFAULT_COLOR = '#1a6dd6';

/**
 * An OpenLayers style (or style function) of a style option.
 * @param {StyleOptions|Style|Function|undefined} options The options.
 * @return {Style|Function} The style.
 */
export function toStyle(options) {
  if (options instanceof Style || typeof options === 'function') {
    return options;
  }
  const o = options || {};
  const stroke = new Stroke({color: o.color || DEFAULT_COLOR, width: o.width ?? 2});
  const fill = new Fill({color: o.fillColor || 'rgba(26, 109, 214, 0.25)'});
  const image = o.icon
    ? new Icon({src: o.icon, anchor: [0.5, 1]})
    : new CircleStyle({radius: o.radius ?? 6, stroke: new Stroke({color: '#fff', width: 2}),
      fill: new Fill({color: o.fillColor || o.color || DEFAULT_COLOR})});
  const style = new Style({stroke, fill, image});
  if (!o.label) {
    return style;
  }
  const text = new Text({offsetY: -14, font: '12px sans-serif',
    fill: new Fill({color: '#222'}), stroke: new Stroke({color: '#fff', width: 3})});
  const labelled = new Style({stroke, fill, image, text});
  return (feature) => {
    const value = feature.get(o.label);
    if (value === undefined || value === null) {
      return style;
    }
    text.setText(String(value));
    return labelled;
  };
}
