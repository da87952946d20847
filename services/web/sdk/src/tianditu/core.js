/**
 * The one place the Tianditu layer meets the SDK (src/index.js, "Internal API"): a T.Map is a
 * Geoplat.Map without its own controls (a Tianditu map has none until `addControl`), whose
 * base map follows `setMapType`. The SDK gives the `data-idle="true"` render gate, the grid
 * from the node's capabilities (view zoom n = matrix level n, Tianditu's numbering) and the
 * `error` event (bad key, quota) that T.Map passes on.
 */

import { Map as GeoplatMap } from "../index.js";

/**
 * @param {HTMLElement} el
 * @param {{grid: "c"|"w", basemap: string, labels: boolean, emap: boolean, minZoom: number, maxZoom: number}} o
 */
export function createCore(el, o) {
  const map = new GeoplatMap(el, {
    crs: o.grid === "c" ? "EPSG:4490" : "EPSG:3857",
    basemap: o.basemap,
    labels: o.labels,
    controls: false,
    minZoom: o.minZoom,
    maxZoom: o.maxZoom,
  });
  const state = { emap: o.emap, labels: o.labels, filter: "" };
  const filtered = new WeakSet();

  function baseLayers() {
    return map.basemap ? map.basemap.getLayers() : [];
  }

  function apply() {
    const layers = baseLayers();
    if (!layers.length) return;
    const [base, labels] = layers;
    base.setVisible(state.emap);
    labels.setVisible(state.emap && state.labels);
    for (const layer of layers) {
      if (!filtered.has(layer)) {
        filtered.add(layer);
        // T.Map.setStyle: the base map drawn through a canvas filter
        layer.on("prerender", (e) => {
          if (e.context && "filter" in e.context) e.context.filter = state.filter || "none";
        });
        layer.on("postrender", (e) => {
          if (e.context && "filter" in e.context) e.context.filter = "none";
        });
      }
      layer.changed();
    }
  }

  map.ready.then(apply, () => {});

  return {
    map,
    ready: map.ready,
    getLibMap: () => map.getLibMap(),
    baseLayers,
    setEmap(on) {
      state.emap = !!on;
      apply();
    },
    setBasemap(name, labels) {
      state.labels = !!labels;
      map.setBasemap(name).then(apply, () => {});
      apply();
    },
    setFilter(filter) {
      state.filter = filter || "";
      apply();
    },
    /** Calls fn(event) on the SDK's `error` (status, title, detail). */
    onError(fn) {
      map.on("error", fn);
    },
  };
}
