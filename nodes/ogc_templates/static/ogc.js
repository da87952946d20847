/*
 * geoplat: the script of the node's OGC API HTML pages (nodes/ogc_templates/_base.html).
 * - a page with a map (#geoplat-map-data, a JSON data block written with script_json) gets
 *   a Geoplat.Map (the SDK, /sdk/geoplat.js, same origin) on the node's e-map, with the
 *   page's features (items, item), the collection's extent (where Ctrl + drag draws a box and
 *   tells its `bbox=`, with a link to the items in it, as pygeoapi's page did) or the
 *   collection's vector tiles (tiles: the `w` grid, EPSG:3857, the tiles' own) drawn on it;
 * - every page embeds its JSON-LD representation for search engines (as pygeoapi's did).
 * Text from the data goes into the DOM as text only. Nothing is loaded from another origin.
 */
(function () {
  'use strict';

  function embedJsonLd() {
    var path = window.location.pathname + '?f=jsonld';
    fetch(path, {credentials: 'same-origin', headers: {Accept: 'application/ld+json'}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) { return; }
        var block = document.createElement('script');
        block.type = 'application/ld+json';
        block.textContent = text.replace('docs/jsonldcontext.jsonld', '');
        document.head.appendChild(block);
      })
      .catch(function () {});
  }

  function style(ol) {
    var stroke = new ol.Stroke({color: '#d32f2f', width: 2});
    var fill = new ol.Fill({color: 'rgba(211, 47, 47, 0.15)'});
    return new ol.Style({stroke: stroke, fill: fill, image: new ol.CircleStyle({
      radius: 6, fill: new ol.Fill({color: '#d32f2f'}),
      stroke: new ol.Stroke({color: '#fff', width: 2})})});
  }

  /** The popup of one feature of an items page: its title (text) linking to its page. */
  function popupOf(config, feature) {
    var id = feature.getId();
    var props = feature.get('properties_') || {};
    var title = config.titleField && props[config.titleField] !== undefined
      ? props[config.titleField] : id;
    var span = document.createElement('span');
    var link = document.createElement('a');
    link.href = config.itemsPath + '/' + encodeURIComponent(String(id)) + '?f=html';
    link.textContent = String(title);
    span.appendChild(link);
    return span;
  }

  function drawMap() {
    var block = document.getElementById('geoplat-map-data');
    if (!block || !window.Geoplat) { return; }
    var config = JSON.parse(block.textContent);
    var el = document.getElementById(config.target || 'items-map');
    if (!el) { return; }
    el.classList.add('geoplat-ogc-map');
    var Geoplat = window.Geoplat, ol = Geoplat.ol;
    var map = new Geoplat.Map(el, {key: config.key || '', zoom: 4, center: [105, 35],
      crs: config.kind === 'tiles' ? 'EPSG:3857' : 'EPSG:4490'});
    window.geoplatOgc = {map: map, config: config};
    map.on('error', function (evt) {
      el.dataset.error = String(evt.status);
    });
    if (config.kind === 'tiles') {
      var bounds = (config.bounds || []).map(Number);
      map.ready.then(function () {
        if (bounds.length === 4 && bounds.every(isFinite)) {
          map.fitBounds(bounds, {maxZoom: 14});
        }
        var overlay = map.addLayer({type: 'vectortiles', collection: config.collection});
        // the collection has tiles from its minzoom on (the node answers 404 above that): the
        // layer shows where its source's nearest tile level is minzoom or finer
        var layer = overlay.getLibLayer(), grid = layer.getSource().getTileGrid();
        var minzoom = Number(config.minzoom);
        if (grid && isFinite(minzoom) && minzoom > grid.getMinZoom()) {
          layer.setMaxResolution(grid.getResolution(minzoom) * Math.SQRT2);
          var view = map.getLibMap().getView();
          if (view.getResolution() > layer.getMaxResolution()) { // closer, to see the tiles
            view.setResolution(view.getConstrainedResolution(grid.getResolution(minzoom)));
          }
        }
        window.geoplatOgc.overlay = overlay;
      }, function () {});
      return;
    }
    var source = new ol.VectorSource();
    var format = new ol.GeoJSON();
    var read = {dataProjection: 'EPSG:4326', featureProjection: map.projection};
    if (config.kind === 'extent') {
      var b = config.bbox.map(Number);
      source.addFeature(new ol.Feature({geometry: ol.fromExtent(
        ol.transformExtent(b, 'EPSG:4326', map.projection))}));
    } else {
      (config.features || []).forEach(function (f) {
        if (!f || !f.geometry) { return; }
        // the properties stay data of ours: never set as the feature's own keys
        var feature = format.readFeature({type: 'Feature', id: f.id, geometry: f.geometry,
          properties: {}}, read);
        feature.set('properties_', f.properties || {});
        source.addFeature(feature);
      });
    }
    var layer = new ol.VectorLayer({source: source, style: style(ol), zIndex: 50,
      properties: {geoplat: 'page-features'}});
    map.getLibMap().addLayer(layer);
    var fit = function () {
      if (source.getFeatures().length === 0) { return; }
      map.getLibMap().getView().fit(source.getExtent(), {padding: [30, 30, 30, 30],
        maxZoom: config.kind === 'item' ? 15 : 14});
    };
    fit();
    map.ready.then(fit, function () {});
    if (config.kind === 'items') {
      map.on('featureclick', function (evt) {
        if (evt.feature && source.hasFeature(evt.feature)) {
          map.openPopup(evt.lngLat, popupOf(config, evt.feature));
        }
      });
    }
    if (config.kind === 'extent') {
      drawBoxes(map, ol);
    }
    /** for the page's own tests and for developers: the map and what it drew */
    Object.assign(window.geoplatOgc, {
      source: source,
      popupFor: function (id) {
        var feature = source.getFeatureById(id);
        if (!feature) { return null; }
        var node = popupOf(config, feature);
        var geom = feature.getGeometry();
        var at = ol.getExtentCenter(geom.getExtent());
        map.getLibMap().getView().setCenter(at);
        map.popup.open(at, node);
        return map.popup.element;
      },
    });
  }

  /** Ctrl (or Cmd) + drag draws a box: its `bbox=` and a link to the collection's items in it. */
  function drawBoxes(map, ol) {
    var boxes = new ol.VectorSource();
    map.getLibMap().addLayer(new ol.VectorLayer({source: boxes, zIndex: 60,
      style: new ol.Style({stroke: new ol.Stroke({color: '#ff7800', width: 1.5}),
        fill: new ol.Fill({color: 'rgba(255, 120, 0, 0.1)'})})}));
    var modifier = function (e) {
      return Boolean(e.originalEvent && (e.originalEvent.ctrlKey || e.originalEvent.metaKey));
    };
    var draw = new ol.Draw({source: boxes, type: 'Circle', geometryFunction: ol.createBox(),
      condition: modifier, freehandCondition: modifier});
    draw.on('drawstart', function () {
      boxes.clear();
      map.closePopup();
    });
    draw.on('drawend', function (evt) {
      var extent = ol.transformExtent(evt.feature.getGeometry().getExtent(), map.projection,
        'EPSG:4326');
      var bbox = extent.map(function (v) { return Number(v.toFixed(6)); }).join(',');
      var box = document.createElement('span');
      var text = document.createElement('code');
      text.textContent = 'bbox=' + bbox;
      var link = document.createElement('a');
      link.href = window.location.pathname.replace(/\/+$/, '') + '/items?f=html&bbox=' +
        encodeURIComponent(bbox);
      link.textContent = '范围内要素 Items in it';
      box.append(text, document.createElement('br'), link);
      map.openPopup(ol.toLonLat(ol.getExtentCenter(evt.feature.getGeometry().getExtent()),
        map.projection), box);
      window.geoplatOgc.bbox = bbox;
    });
    map.getLibMap().addInteraction(draw);
  }

  drawMap();
  embedJsonLd();
}());
