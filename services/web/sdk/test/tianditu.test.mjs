// The Tianditu JS API 4.0 layer's pure parts (node --test): T.* argument handling, LngLat /
// LngLatBounds math, map types and projections, the postStr/ds each service sends, and the
// result objects' getters over answers in the node's Tianditu shapes.
import assert from 'node:assert/strict';
import test from 'node:test';

import {LngLat, LngLatBounds, Point, fmt, toLngLat} from '../src/tianditu/base.js';
import {Evented} from '../src/tianditu/events.js';
import {configure, serviceUrl} from '../src/tianditu/http.js';
import {
  LocalSearch, LocalSearchResult, jsType, searchPostStr, suggestBody, suggestParams,
} from '../src/tianditu/localsearch.js';
import {
  EMAP, MapType, builtinMapTypes, codeOf, emapOf, gridOf, resolutionOf, tileUrl, wmsParams,
  zoomLevel,
} from '../src/tianditu/maptype.js';
import {
  AdministrativeDivisionResult, GeocoderLocationResult, GeocoderPointResult, adminPostStr,
  geocodeDs, reversePostStr,
} from '../src/tianditu/services.js';
import {DrivingRouteResult, drivePostStr, lineOf} from '../src/tianditu/driving.js';

test('T.LngLat coerces strings as Tianditu examples pass them, refuses non-numbers', () => {
  const p = new LngLat('120.2130', '30.2460');
  assert.equal(p.getLng(), 120.213);
  assert.equal(p.getLat(), 30.246);
  assert.throws(() => new LngLat('abc', 30), TypeError);
  assert.throws(() => new LngLat('', 30), TypeError);
  assert.throws(() => new LngLat(undefined, 30), TypeError);
  assert.throws(() => new LngLat(NaN, 30), TypeError);
  assert.ok(p.equals(new LngLat(120.213, 30.246)));
  assert.ok(!p.equals(new LngLat(120.214, 30.246)));
  assert.deepEqual(toLngLat([1, 2]), new LngLat(1, 2));
});

test('T.LngLat.distanceTo is the great-circle distance in metres', () => {
  // one degree of latitude on a 6,371 km sphere: 111,194.9 m
  const d = new LngLat(120, 30).distanceTo(new LngLat(120, 31));
  assert.ok(Math.abs(d - 111194.93) < 0.1, String(d));
  assert.equal(new LngLat(120, 30).distanceTo(new LngLat(120, 30)), 0);
});

test('T.LngLatBounds: corners, centre, extend, contains, intersects, mapBound text', () => {
  const b = new LngLatBounds(new LngLat(120.1, 30.2), new LngLat(120.3, 30.3));
  assert.deepEqual(b.getSouthWest(), new LngLat(120.1, 30.2));
  assert.deepEqual(b.getNorthEast(), new LngLat(120.3, 30.3));
  assert.ok(b.getCenter().equals(new LngLat(120.2, 30.25)));
  assert.ok(b.contains(new LngLat(120.2, 30.25)));
  assert.ok(b.contains(new LngLat(120.1, 30.2)), 'edges are inside');
  assert.ok(!b.contains(new LngLat(120.4, 30.25)));
  assert.ok(b.contains(new LngLatBounds(new LngLat(120.15, 30.21), new LngLat(120.2, 30.29))));
  assert.ok(b.intersects(new LngLatBounds(new LngLat(120.25, 30.25), new LngLat(121, 31))));
  assert.ok(!b.intersects(new LngLatBounds(new LngLat(121, 31), new LngLat(122, 32))));
  assert.equal(b.toBBoxString(), '120.1,30.2,120.3,30.3');
  const e = new LngLatBounds();
  assert.ok(!e.isValid());
  e.extend(new LngLat(1, 2)).extend(new LngLat(-1, 5));
  assert.equal(e.toBBoxString(), '-1,2,1,5');
  e.extend(b);
  assert.equal(e.toBBoxString(), '-1,2,120.3,30.3');
  // the corners given the wrong way round still make a proper box
  const w = new LngLatBounds(new LngLat(120.3, 30.3), new LngLat(120.1, 30.2));
  assert.equal(w.toBBoxString(), '120.1,30.2,120.3,30.3');
  assert.equal(fmt(1 / 3), '0.333333');
  assert.equal(fmt(1e-7), '0');
});

test('T.Point', () => {
  const p = new Point('3', 4);
  assert.equal(p.distanceTo(new Point(0, 0)), 5);
  assert.ok(p.equals(new Point(3, 4)));
  assert.deepEqual(p.add(new Point(1, 1)), new Point(4, 5));
});

test('events: context, target, removal, one throwing listener does not stop the others', () => {
  const o = new Evented();
  const seen = [];
  const ctx = {name: 'ctx'};
  function f(e) {
    seen.push([this, e.type, e.target, e.lnglat]);
  }
  o.addEventListener('click', f, ctx);
  o.addEventListener('click', f, ctx); // once only
  o.fire('click', {lnglat: 1});
  assert.deepEqual(seen, [[ctx, 'click', o, 1]]);
  o.removeEventListener('click', f);
  o.fire('click', {});
  assert.equal(seen.length, 1);
  assert.throws(() => o.addEventListener('click', 'nope'), TypeError);
});

test('map types are the e-map pairs; projections and levels as Tianditu numbers them', () => {
  const t = builtinMapTypes();
  assert.deepEqual(Object.keys(t).sort(), ['TMAP_HYBRID_MAP', 'TMAP_NORMAL_MAP',
    'TMAP_SATELLITE_MAP', 'TMAP_TERRAIN_HYBRID_MAP', 'TMAP_TERRAIN_MAP']);
  assert.deepEqual(emapOf(t.TMAP_NORMAL_MAP), {basemap: 'vec', labels: 'cva', title: '地图'});
  assert.deepEqual(emapOf(t.TMAP_SATELLITE_MAP), {basemap: 'img', labels: null, title: '卫星'});
  assert.deepEqual(emapOf(t.TMAP_HYBRID_MAP).labels, 'cia');
  assert.deepEqual(emapOf(t.TMAP_TERRAIN_MAP), {basemap: 'ter', labels: null, title: '地形'});
  assert.deepEqual(emapOf(t.TMAP_TERRAIN_HYBRID_MAP).labels, 'cta');
  assert.deepEqual(t.TMAP_HYBRID_MAP.getLayers(), ['img', 'cia']);
  assert.equal(t.TMAP_NORMAL_MAP.getName(), 'TMAP_NORMAL_MAP');
  assert.equal(Object.keys(EMAP).length, 5);
  assert.equal(emapOf(new MapType([], 'mine')), null);
  assert.throws(() => emapOf('TMAP_NORMAL_MAP'), TypeError);

  assert.equal(gridOf(undefined), 'w', "Tianditu's default is EPSG:900913");
  assert.equal(gridOf('EPSG:900913'), 'w');
  assert.equal(gridOf('EPSG:3857'), 'w');
  assert.equal(gridOf('EPSG:4326'), 'c');
  assert.equal(gridOf('epsg:4490'), 'c');
  assert.throws(() => gridOf('EPSG:2000'), /900913/);
  assert.equal(codeOf('c'), 'EPSG:4326');
  assert.equal(codeOf('w'), 'EPSG:900913');

  assert.equal(resolutionOf('c', 1), 0.703125, 'level 1 of the c grid');
  assert.equal(resolutionOf('c', 18), 0.703125 / 2 ** 17);
  assert.ok(Math.abs(resolutionOf('w', 1) - 78271.517) < 0.001);
  assert.equal(zoomLevel('12'), 12);
  assert.equal(zoomLevel(25), 18);
  assert.equal(zoomLevel(0), 1);
  assert.equal(zoomLevel(11.6), 12);
  assert.throws(() => zoomLevel('x'), TypeError);
});

test('T.TileLayer templates and T.TileLayer.WMS parameters', () => {
  const url = 'http://n/vec_c/wmts?SERVICE=WMTS&REQUEST=GetTile&TILEMATRIX={z}&TILEROW={y}' +
    '&TILECOL={x}&tk=K';
  assert.equal(tileUrl(url, 3, 6, 1), 'http://n/vec_c/wmts?SERVICE=WMTS&REQUEST=GetTile&' +
    'TILEMATRIX=3&TILEROW=1&TILECOL=6&tk=K');
  assert.equal(tileUrl('http://t{s}.x/{z}/{x}/{y}', 1, 1, 1, ['0', '1', '2']), 'http://t2.x/1/1/1');
  assert.deepEqual(wmsParams({layers: 'poi'}), {LAYERS: 'poi', STYLES: '', FORMAT: 'image/jpeg',
    TRANSPARENT: 'FALSE', VERSION: '1.1.1'});
  assert.equal(wmsParams({layers: 'a,b', transparent: true, format: 'image/png'}).TRANSPARENT, 'TRUE');
  assert.throws(() => wmsParams({}), /layers/);
});

const MAP = {
  getBounds: () => new LngLatBounds(new LngLat(120.1, 30.2), new LngLat(120.3, 30.3)),
  getZoom: () => 12,
};

test('LocalSearch.search sends the /v2/search postStr of Tianditu queryType 1/7 with the view', () => {
  const st = {map: MAP, capacity: 10, page: 1, specify: null};
  assert.deepEqual(searchPostStr({kind: 'search', keyword: ' 政务服务 ', type: 1}, st), {
    keyWord: '政务服务', queryType: 1, mapBound: '120.1,30.2,120.3,30.3', level: 12, start: 0,
    count: 10});
  assert.equal(searchPostStr({kind: 'search', keyword: '西湖', type: 7}, st).queryType, 7);
  const spec = searchPostStr({kind: 'search', keyword: '大厅', type: 1},
    {...st, specify: '156330102', page: 3});
  assert.equal(spec.specify, '156330102');
  assert.equal(spec.start, 20);
  // types 2 and 10 search the view; 4 and 5 (suggestions, bus) are a normal search
  assert.equal(searchPostStr({kind: 'search', keyword: 'x', type: 2}, st).queryType, 2);
  assert.equal(searchPostStr({kind: 'search', keyword: 'x', type: 10}, st).queryType, 2);
  assert.equal(searchPostStr({kind: 'search', keyword: 'x', type: 4}, st).queryType, 1);
  assert.throws(() => searchPostStr({kind: 'search', keyword: 'x', type: 2}, {...st, map: null}),
    /bounds/);
  // without a map: no mapBound, no level
  assert.deepEqual(searchPostStr({kind: 'search', keyword: 'x', type: 1}, {...st, map: null}),
    {keyWord: 'x', queryType: 1, start: 0, count: 10});
});

test('LocalSearch.searchNearby and searchInBounds: queryType 3 and 2', () => {
  const st = {map: MAP, capacity: 20, page: 1, specify: '156330100'};
  assert.deepEqual(searchPostStr({kind: 'nearby', keyword: '医院', center: new LngLat(120.213, 30.246),
    radius: 1500.4}, st), {keyWord: '医院', queryType: 3, pointLonlat: '120.213,30.246',
    queryRadius: '1500', start: 0, count: 20});
  assert.throws(() => searchPostStr({kind: 'nearby', keyword: 'x', center: new LngLat(1, 2),
    radius: 20000}, st), RangeError);
  assert.throws(() => searchPostStr({kind: 'nearby', keyword: 'x', center: new LngLat(1, 2),
    radius: 0}, st), RangeError);
  const b = new LngLatBounds(new LngLat(119, 29), new LngLat(200, 95));
  assert.deepEqual(searchPostStr({kind: 'bounds', keyword: 'x', bounds: b}, st),
    {keyWord: 'x', queryType: 2, mapBound: '119,29,180,90', level: 12, start: 0, count: 20});
  assert.throws(() => searchPostStr({kind: 'bounds', keyword: 'x', bounds: null}, st), TypeError);
});

test('LocalSearch refuses what Tianditu refuses before sending anything', () => {
  const st = {map: MAP, capacity: 10, page: 1};
  assert.throws(() => searchPostStr({kind: 'search', keyword: '  ', type: 1}, st), /empty/);
  assert.throws(() => searchPostStr({kind: 'search', keyword: 'x'.repeat(101), type: 1}, st),
    /100/);
  assert.throws(() => jsType(3), RangeError);
  assert.throws(() => jsType('abc'), RangeError);
  assert.equal(jsType('7'), 7);
  assert.equal(jsType(undefined, 1), 1);
  // pages stay within start <= 300, start + count <= 500
  const far = searchPostStr({kind: 'search', keyword: 'x', type: 1}, {...st, capacity: 300, page: 9});
  assert.equal(far.start, 300);
  assert.equal(far.count, 200);
  const ls = new LocalSearch(null, {pageCapacity: 1000});
  assert.equal(ls.getPageCapacity(), 300);
  ls.setPageCapacity('abc');
  assert.equal(ls.getPageCapacity(), 10);
  assert.throws(() => ls.search(''), /empty/);
  assert.equal(ls.getCountNumber(), 0);
  assert.equal(ls.getPageIndex(), 1);
  ls.setQueryType(7);
  assert.equal(ls.getQueryType(), 7);
  assert.throws(() => ls.setQueryType(99), RangeError);
  assert.throws(() => ls.setSpecifyAdminCode('x'.repeat(51)), RangeError);
});

test('LocalSearchResult getters over the node answer shapes', () => {
  const pois = {resultType: 1, count: '23', keyWord: '政务服务', status: {infocode: 1000,
    cndesc: '服务正常'}, pois: [{name: '杭州市民中心政务服务大厅', lonlat: '120.213,30.246',
    address: '上城区', countyCode: '156330102'}], prompt: [{type: 4, admins: [{adminName: '杭州市',
    adminCode: 156330100}]}]};
  const r = new LocalSearchResult(pois, {keyword: '政务服务', jsType: 1});
  assert.equal(r.getResultType(), 1);
  assert.equal(r.getCount(), 23);
  assert.equal(r.getKeyword(), '政务服务');
  assert.equal(r.getPois()[0].lonlat.split(',').length, 2);
  assert.equal(r.getPrompt()[0].admins[0].name, '杭州市', 'the name the example reads');
  assert.equal(r.getStatistics(), undefined);
  assert.equal(r.getStatus(), 1000);
  const stats = new LocalSearchResult({resultType: 2, count: '5', statistics: {priorityCitys: [
    {name: '杭州市', count: 5}], allAdmins: []}, status: {infocode: 1000}});
  assert.equal(stats.getResultType(), 2);
  assert.equal(stats.getStatistics().priorityCitys[0].name, '杭州市');
  assert.equal(stats.getPois(), undefined);
  const area = new LocalSearchResult({resultType: 3, count: '1', area: {name: '上城区',
    lonlat: '120.17,30.25', level: 12}, status: {infocode: 1000}});
  assert.equal(area.getArea().name, '上城区');
  const sug = new LocalSearchResult(pois, {jsType: 4});
  assert.equal(sug.getResultType(), 4);
  assert.deepEqual(sug.getSuggests(), [{name: '杭州市民中心政务服务大厅', address: '上城区',
    gbCode: '156330102'}]);
  assert.equal(sug.getPois(), undefined);
  const empty = new LocalSearchResult({count: '0', resultType: 1, status: {infocode: 1000}});
  assert.equal(empty.getCount(), 0);
  assert.equal(new LocalSearchResult(null).getStatus(), 3000);
});

test('LocalSearch types 4 and 5: the node suggestions as resultType 4 suggests', () => {
  assert.deepEqual(suggestParams(' hzsmzx ', 10), {q: 'hzsmzx', limit: 10});
  assert.deepEqual(suggestParams('x', 300), {q: 'x', limit: 100});
  assert.throws(() => suggestParams('', 10), /empty/);
  const body = suggestBody({type: 'FeatureCollection', features: [
    {type: 'Feature', properties: {name: '杭州市民中心政务服务大厅', address: '上城区',
      admin: {province_code: '330000', city_code: '330100', county_code: '330102',
        township_code: null}}},
    {type: 'Feature', properties: {name: '杭州市', admin: {}}}]}, 'hzsmzx');
  const r = new LocalSearchResult(body, {keyword: 'hzsmzx', jsType: 4});
  assert.equal(r.getResultType(), 4);
  assert.equal(r.getCount(), 2);
  assert.deepEqual(r.getSuggests(), [
    {name: '杭州市民中心政务服务大厅', address: '上城区', gbCode: '156330102'},
    {name: '杭州市', address: '', gbCode: ''}]);
  assert.equal(r.getPois(), undefined);
  const none = new LocalSearchResult(suggestBody({features: []}, 'x'), {jsType: 4});
  assert.equal(none.getCount(), 0);
  assert.deepEqual(none.getSuggests(), []);
  assert.equal(none.getStatus(), 1000);
  assert.equal(new LocalSearchResult(suggestBody(null, 'x'), {jsType: 5}).getCount(), 0);
});

test('Geocoder: the ds and postStr sent, result getters over the node answers', () => {
  assert.equal(geocodeDs(' 浙江省杭州市上城区宏二路2号 '), '{"keyWord":"浙江省杭州市上城区宏二路2号"}');
  assert.equal(geocodeDs('a"b'), '{"keyWord":"a\\"b"}', 'JSON-escaped, never spliced');
  assert.throws(() => geocodeDs(''), /empty/);
  assert.throws(() => geocodeDs('x'.repeat(101)), RangeError);
  assert.equal(reversePostStr(new LngLat(120.213, 30.246)), '{"lon":120.213,"lat":30.246,"ver":1}');
  assert.throws(() => reversePostStr(new LngLat(200, 30)), RangeError);

  const p = new GeocoderPointResult({msg: 'ok', status: '0', searchVersion: '6.4.9V', location: {
    score: 100, level: '门址', lon: '120.213000', lat: '30.246000', keyWord: 'x'}});
  assert.equal(p.getStatus(), 0);
  assert.equal(p.getMsg(), 'ok');
  assert.deepEqual(p.getLocationPoint(), new LngLat(120.213, 30.246));
  assert.equal(p.location.lon, 120.213, 'numbers, as the typings say');
  assert.equal(p.getLocationLevel(), '门址');
  const none = new GeocoderPointResult({msg: '无结果', status: '101'});
  assert.equal(none.getStatus(), 101);
  assert.equal(none.getLocationPoint(), undefined);

  const r = new GeocoderLocationResult({status: '0', msg: 'ok', result: {formatted_address:
    '浙江省杭州市上城区宏二路2号', location: {lon: 120.213, lat: 30.246}, addressComponent: {
    city: '杭州市', county: '上城区', road: '宏二路', address: '宏二路2号'}}});
  assert.equal(r.getStatus(), 0);
  assert.equal(r.getAddress(), '浙江省杭州市上城区宏二路2号');
  assert.equal(r.getAddressComponent().city, '杭州市');
  assert.equal(r.getAddressComponent().addressComponent.road, '宏二路');
  assert.deepEqual(r.getLocationPoint(), new LngLat(120.213, 30.246));
  assert.equal(new GeocoderLocationResult(null).getStatus(), 404);
});

test('AdministrativeDivision: the legacy postStr and result getters', () => {
  assert.equal(adminPostStr({searchWord: '杭州', searchType: 1, needSubInfo: true, needAll: false,
    needPolygon: true, needPre: true}), '{"searchWord":"杭州","searchType":"1","needSubInfo":' +
    '"true","needAll":"false","needPolygon":"true","needPre":"true"}');
  assert.equal(JSON.parse(adminPostStr({searchWord: '330100', searchType: '0'})).searchType, '0');
  assert.throws(() => adminPostStr({}), /searchWord/);
  assert.throws(() => adminPostStr({searchWord: 'x', searchType: 2}), /searchType/);
  const r = new AdministrativeDivisionResult({returncode: '100', msg: 'ok', data: [{name: '杭州市',
    lnt: 120.2, lat: 30.3, points: [{region: '120 30,121 30,121 31'}]}]});
  assert.equal(r.getStatus(), 100);
  assert.equal(r.getData()[0].points[0].region.split(',')[0].split(' ').length, 2);
  assert.equal(new AdministrativeDivisionResult({}).getStatus(), 101);
});

test('DrivingRoute sends /drive its postStr and reads the answer as Tianditu clients do', () => {
  assert.deepEqual(JSON.parse(drivePostStr(new LngLat(120.1, 30.2), [120.2, 30.3], 1)),
    {orig: '120.1,30.2', dest: '120.2,30.3', mid: '', style: '1'});
  assert.equal(JSON.parse(drivePostStr([120.1, 30.2], [120.2, 30.3], 9)).style, '0');
  assert.equal(JSON.parse(drivePostStr([120.1, 30.2], [120.2, 30.3], 0,
    [[120.15, 30.25]])).mid, '120.15,30.25');
  assert.throws(() => drivePostStr('x', [120.2, 30.3]), TypeError);
  assert.deepEqual(lineOf('120.1,30.2;120.2,30.3;'), [new LngLat(120.1, 30.2),
    new LngLat(120.2, 30.3)]);
  const answer = {infocode: '', cndesc: '', distance: '1.234', duration: '185',
    routelatlon: '120.1,30.2;120.15,30.2;120.15,30.3;',
    routes: [{strguide: '从A路出发，行驶500米', streetName: 'A路', turnlatlon: '120.1,30.2'},
      {strguide: '直行进入A路，行驶200米', streetName: 'A路', turnlatlon: '120.14,30.2'},
      {strguide: '左转进入B路，行驶534米', streetName: 'B路', turnlatlon: '120.15,30.2'},
      {strguide: '到达终点', streetName: 'B路', turnlatlon: '120.15,30.3'}],
    simple: [{strguide: '从A路出发', streetNames: 'A路', turnlatlon: '120.1,30.2',
      streetLatLon: '120.1,30.2;120.15,30.2;', streetDistance: '700', segmentNumber: '0-1'},
    {strguide: '左转进入B路', streetNames: 'B路', turnlatlon: '120.15,30.2',
      streetLatLon: '120.15,30.2;120.15,30.3;', streetDistance: '534', segmentNumber: '2'}]};
  const r = new DrivingRouteResult(new LngLat(120.1, 30.2), new LngLat(120.15, 30.3), answer);
  assert.equal(r.getStatus(), 0);
  assert.equal(r.getNumPlans(), 1);
  const plan = r.getPlan(0);
  assert.equal(plan.getDistance(), 1.234);
  assert.equal(plan.getDuration(), 185);
  assert.equal(plan.getPath().length, 3);
  assert.ok(plan.getPath()[2].equals(new LngLat(120.15, 30.3)));
  assert.equal(plan.getNumRoutes(), 2);
  assert.equal(plan.getRoute(0).getNumSteps(), 2);
  assert.equal(plan.getRoute(0).getDistance(), 700);
  assert.equal(plan.getRoute(1).getStep(0).getDescription(), '左转进入B路，行驶534米');
  assert.ok(plan.getRoute(1).getStep(0).getPosition().equals(new LngLat(120.15, 30.2)));
  assert.deepEqual(r.getStart(), new LngLat(120.1, 30.2));
  const none = new DrivingRouteResult(null, null, {...answer, infocode: '3001',
    cndesc: '没有找到路线', routes: [], simple: []});
  assert.equal(none.getStatus(), 3001);
  assert.equal(none.getMsg(), '没有找到路线');
  assert.equal(none.getNumPlans(), 0);
  assert.equal(new DrivingRouteResult(null, null, null, 3000, 'HTTP 403').getStatus(), 3000);
});

test('service URLs carry the key of /api?v=4.0&tk=KEY, every value encoded', () => {
  configure({base: 'http://127.0.0.1:8200/', key: 'K&1'});
  const u = new URL(serviceUrl('/v2/search', {postStr: '{"keyWord":"a&b#c"}', type: 'query'}));
  assert.equal(u.origin + u.pathname, 'http://127.0.0.1:8200/v2/search');
  assert.equal(u.searchParams.get('postStr'), '{"keyWord":"a&b#c"}');
  assert.equal(u.searchParams.get('type'), 'query');
  assert.equal(u.searchParams.get('tk'), 'K&1');
  configure({base: '', key: ''});
  assert.equal(serviceUrl('/geocoder', {ds: '{}'}), '/geocoder?ds=%7B%7D');
});
