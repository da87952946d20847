/** The catalogue page's UI texts (Chinese, English). */
export default {
  zh: {
    title: '目录服务', lang: 'English', map: '地图', catalogue: '目录', status: '服务状态',
    q: '名称、描述、关键词', type: '类型', anyType: '全部类型', node: '节点',
    anyNode: '全部节点', bbox: '范围', bboxHint: '经度,纬度,经度,纬度', drawBox: '框选范围',
    clearBox: '清除范围', drawHint: '在地图上单击两点框出范围', search: '搜索',
    prev: '上一页', next: '下一页', count: '共 {n} 条，第 {from}-{to} 条', none: '没有找到服务',
    addToMap: '添加到地图', copyUrl: '复制地址', copied: '已复制服务地址：{url}',
    copyHere: '服务地址（请手动复制）：{url}', noMap: '门户地图不能显示此服务',
    badBbox: '范围须是四个数：最小经度,最小纬度,最大经度,最大纬度', error: '出错了：',
    public: '公开', registered: '注册用户', restricted: '受限',
    up: '正常', degraded: '降级', down: '故障', unknown: '未知',
  },
  en: {
    title: 'Catalogue', lang: '中文', map: 'Map', catalogue: 'Catalogue',
    status: 'Service status', q: 'Title, description, keywords', type: 'Type',
    anyType: 'Any type', node: 'Node', anyNode: 'Any node', bbox: 'Extent',
    bboxHint: 'lon,lat,lon,lat', drawBox: 'Draw extent', clearBox: 'Clear extent',
    drawHint: 'Click two corners on the map', search: 'Search', prev: 'Previous',
    next: 'Next', count: '{n} services, {from}-{to}', none: 'No service found',
    addToMap: 'Add to map', copyUrl: 'Copy URL', copied: 'Service URL copied: {url}',
    copyHere: 'Service URL (copy it by hand): {url}',
    noMap: 'The portal map cannot show this service',
    badBbox: 'The extent is four numbers: min lon, min lat, max lon, max lat',
    error: 'Error: ', public: 'public', registered: 'registered', restricted: 'restricted',
    up: 'up', degraded: 'degraded', down: 'down', unknown: 'unknown',
  },
};
