/**
 * T.Map's events from OpenLayers' (see map.js for the list): pointer events carry Tianditu's
 * `lnglat` (T.LngLat) and `containerPoint` (T.Point); a click on a vector overlay fires on
 * the overlay, then on the map (Leaflet's bubbling, which Tianditu keeps). OpenLayers fires
 * movestart in the frame after the view changed, so zoomend compares with the level of the
 * last moveend.
 */

import { Point } from "./base.js";
import { OverlayBase } from "./overlay.js";

function mouse(map, ev) {
  const px = ev.pixel;
  const coord = ev.coordinate || (px && map._olMap.getCoordinateFromPixel(px));
  return { lnglat: coord ? map._fromView(coord) : undefined, containerPoint: px ? new Point(px[0], px[1]) : undefined, originalEvent: ev.originalEvent };
}

function domMouse(map, ev) {
  const r = map._olMap.getViewport().getBoundingClientRect();
  const px = [ev.clientX - r.left, ev.clientY - r.top];
  const coord = map._olMap.getCoordinateFromPixel(px);
  return { lnglat: coord ? map._fromView(coord) : undefined, containerPoint: new Point(px[0], px[1]), originalEvent: ev };
}

function vectorAt(map, px) {
  if (!map._vector || !px) return null;
  return map._olMap.forEachFeatureAtPixel(px, (f) => f.get("tdtOverlay"), { layerFilter: (l) => l === map._vector, hitTolerance: 3 }) || null;
}

/** Wires a T.Map's Tianditu events to its OpenLayers map. */
export function wireEvents(map) {
  const m = map._olMap;
  const view = () => map._view();
  // OpenLayers fires movestart in the frame after the view changed: the level before a move
  // is the one of the last moveend
  let lastZoom = null;
  let zoomStarted = false;
  let dragging = false;
  let hovered = null;
  m.on("click", (ev) => {
    const data = mouse(map, ev);
    const hit = vectorAt(map, ev.pixel);
    if (hit) hit.fire("click", { ...data, lnglat: hit._eventLngLat() });
    if (map._openInfo && map._openInfo.win.options.closeOnClick) map.closeInfoWindow();
    map.fire("click", data);
  });
  m.on("dblclick", (ev) => {
    const hit = vectorAt(map, ev.pixel);
    if (hit) hit.fire("dblclick", mouse(map, ev));
    map.fire("dblclick", mouse(map, ev));
  });
  m.on("pointermove", (ev) => {
    if (ev.dragging) return;
    const data = mouse(map, ev);
    if (map._overlays.some((o) => o.listens && (o.listens("mouseover") || o.listens("mouseout")))) {
      const hit = vectorAt(map, ev.pixel);
      if (hit !== hovered) {
        if (hovered) hovered.fire("mouseout", data);
        if (hit) hit.fire("mouseover", data);
        hovered = hit;
      }
    }
    map.fire("mousemove", data);
  });
  m.on("pointerdrag", (ev) => {
    if (!dragging) {
      dragging = true;
      map.fire("dragstart", {});
    }
    map.fire("drag", mouse(map, ev));
  });
  m.on("movestart", () => map.fire("movestart", {}));
  m.on("moveend", () => {
    if (map._maxBounds) {
      const c = map.getCenter();
      if (c && !map._maxBounds.contains(c)) view().setCenter(map._toView(map._clamp(c)));
    }
    updateCustom(map);
    if (dragging) {
      dragging = false;
      map.fire("dragend", {});
    }
    map.fire("moveend", {});
    const z = map.getZoom();
    if (lastZoom !== null && z !== lastZoom) map.fire("zoomend", {});
    lastZoom = z;
    zoomStarted = false;
  });
  const size0 = m.getSize();
  let oldSize = size0 ? new Point(size0[0], size0[1]) : null;
  m.on("change:size", () => {
    const s = m.getSize();
    const newSize = s ? new Point(s[0], s[1]) : undefined;
    if (oldSize) map.fire("resize", { newSize, oldSize });
    oldSize = newSize;
  });
  const onView = (v) => {
    v.on("change:center", () => map.fire("move", {}));
    v.on("change:resolution", () => {
      if (!zoomStarted) {
        zoomStarted = true;
        map.fire("zoomstart", {});
      }
    });
  };
  onView(view());
  m.on("change:view", () => {
    // the SDK replaces the view once the capabilities are read: keep the levels set here
    const v = view();
    v.setMinZoom(map._minZoom);
    v.setMaxZoom(Math.min(map._maxZoom, v.getMaxZoom()));
    onView(v);
  });
  const vp = m.getViewport();
  vp.addEventListener("contextmenu", (ev) => map.fire("contextmenu", domMouse(map, ev)));
  vp.addEventListener("mouseenter", (ev) => map.fire("mouseover", domMouse(map, ev)));
  vp.addEventListener("mouseleave", (ev) => map.fire("mouseout", domMouse(map, ev)));
}

function updateCustom(map) {
  for (const o of map._overlays) if (!(o instanceof OverlayBase) && typeof o.update === "function") o.update();
}
