/**
 * Entry of dist/tianditu.js, served by every node as `/api?v=4.0&tk=KEY`: Tianditu JS API 4.0's
 * global `T` (and its other globals: TMAP_NORMAL_MAP..., T_ANCHOR_*, TMAP_DRIVING_POLICY_*),
 * on the geoplat SDK bundled in the same file. The node writes
 * `globalThis.GEOPLAT_TIANDITU = {key, node, v}` before this bundle (services/web/sdk/build.mjs);
 * the key goes into every tile and service request, as Tianditu's own `tk`.
 *
 * Sources followed: lvzhao1995/tianditu-types and DemoMacro/tianditu `packages/types` (the
 * classes' signatures), Tianditu's examples (lbs.tianditu.gov.cn/api/js4.0/examples.html, as
 * public pages copy them) for how they are called. What is and is not covered: README,
 * "Tianditu JS API 4.0 compatibility".
 */

import { setDefaults } from "../index.js";
import { LngLat, LngLatBounds, Point } from "./base.js";
import {
  Control, ControlCopyright, ControlMapType, ControlOverviewMap, ControlScale, ControlZoom,
} from "./controls.js";
import { configure } from "./http.js";
import { TileLayerWMS, TTileLayer } from "./layers.js";
import { LocalSearch } from "./localsearch.js";
import { MAP_TYPES, MapType, TMap } from "./map.js";
import { ANCHORS, DRIVING_POLICIES } from "./maptype.js";
import { Icon, InfoWindow, Label, Marker } from "./markers.js";
import { AdministrativeDivision, DrivingRoute, Geocoder } from "./services.js";
import { Circle, Polygon, Polyline, Rectangle } from "./vectors.js";
import { OverlayBase } from "./overlay.js";

const g = globalThis;
const boot = (g.GEOPLAT_TIANDITU && typeof g.GEOPLAT_TIANDITU === "object") ? g.GEOPLAT_TIANDITU : {};
const script = typeof document !== "undefined" && document.currentScript ? document.currentScript.src : "";
const node = typeof boot.node === "string" && boot.node ? boot.node
  : (script ? new URL(script).origin : (typeof location !== "undefined" ? location.origin : ""));
const key = typeof boot.key === "string" ? boot.key : "";

setDefaults({ node, key });
configure({ base: node, key });

const Overlay = {
  /** `T.Overlay.extend({initialize, onAdd, onRemove, update})`: a custom overlay class. */
  extend(proto) {
    function Custom(...args) {
      if (typeof this.initialize === "function") this.initialize(...args);
    }
    Object.assign(Custom.prototype, proto || {});
    Custom.prototype.getMap = function getMap() { return this._tdtMap || null; };
    return Custom;
  },
};

const Control_ = Object.assign(Control, {
  Zoom: ControlZoom,
  Scale: ControlScale,
  MapType: ControlMapType,
  OverviewMap: ControlOverviewMap,
  Copyright: ControlCopyright,
});

const T = {
  version: "4.0",
  geoplat: true,
  Map: TMap,
  LngLat,
  LngLatBounds,
  Point,
  MapType,
  TileLayer: TTileLayer,
  Marker,
  Icon,
  Label,
  InfoWindow,
  Polyline,
  Polygon,
  Rectangle,
  Circle,
  Overlay,
  OverlayBase,
  Control: Control_,
  LocalSearch,
  Geocoder,
  AdministrativeDivision,
  DrivingRoute,
};
TTileLayer.WMS = TileLayerWMS;

g.T = T;
for (const [name, value] of Object.entries(MAP_TYPES)) g[name] = value;
for (const [name, value] of Object.entries(ANCHORS)) g[name] = value;
for (const [name, value] of Object.entries(DRIVING_POLICIES)) g[name] = value;
