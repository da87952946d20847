/*
 * geoplat: the script of the node's OGC API HTML pages (nodes/ogc_templates/_base.html).
 * - a page with a map (#geoplat-map-data, a JSON data block written with script_json) gets
 *   a Geoplat.Map (the SDK, /sdk/geoplat.js, same origin) on the node's e-map, with the
 *   page's features (items, item) or the collection's extent drawn on it;
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
    var map = new Geoplat.Map(el, {key: config.key || '', crs: 'EPSG:4490', zoom: 4,
      center: [105, 35]});
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
    map.on('error', function (evt) {
      el.dataset.error = String(evt.status);
    });
    /** for the page's own tests and for developers: the map and what it drew */
    window.geoplatOgc = {
      map: map, source: source, config: config,
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
    };
  }

  drawMap();
  embedJsonLd();
}());
