"""The HTML of `GET /publish` (layers/web.py): the upload form and the sign-in hint."""

PAGE_SIGNIN = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>发布图层 Publish</title>
</head><body><h1>发布图层 Publish a layer</h1><p>Sign in first: <a href="/auth/login?next=/publish">登录 Sign in</a></p></body></html>"""

PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>发布图层 Publish a layer · {{node}}</title>
<style>body{font-family:sans-serif;max-width:36em;margin:3em auto}label{display:block;margin:.6em 0}
input,select{width:100%;padding:.3em}progress{width:100%}pre{white-space:pre-wrap}</style></head><body>
<h1>发布图层 Publish a layer</h1><p>Node {{node}}: zipped Shapefile, GeoPackage, GeoJSON, CSV (lon/lat), GeoTIFF.</p>
<form id="f" method="post" action="/api/layers" enctype="multipart/form-data">
<input type="hidden" name="csrf_token" value="{{csrf}}">
<label>文件 File <input type="file" name="file" required></label>
<label>名称 Name (a-z, 0-9, _) <input name="name" required pattern="[a-z][a-z0-9_]{0,44}"></label>
<label>标题 Title <input name="title"></label>
<label>访问 Access <select name="access"><option>public</option><option>registered</option><option>restricted</option></select></label>
<label>坐标系 CRS (if the file has none) <input name="crs" placeholder="EPSG:4490"></label>
<label>关键词 Keywords (comma separated) <input name="keywords"></label>
<label>GeoPackage layer <input name="layer"></label>
<label><input type="checkbox" name="emap" value="true" style="width:auto"> 叠加到电子地图 Draw on the e-map (vec) and offer as a WMS layer (public layers only)</label>
<label>地名 Place search (empty: the default rule; <code>none</code>: none; or a JSON mapping of columns)
<input name="places" maxlength="4000" placeholder='{"kind": "poi", "name": "mc", "category": "lb"}'></label>
<label>字段权限 Attribute access (attributes stricter than the layer, e.g. <code>right_holder=restricted</code>; empty: as before)
<input name="field_access" maxlength="8000" placeholder="right_holder=restricted,right_type=restricted"></label>
<button>发布 Publish</button></form>
<progress id="p" value="0" max="1" hidden></progress><p id="st"></p>
<progress id="l" value="0" max="1" hidden></progress><pre id="out"></pre>
<script nonce="{{nonce}}">
// The upload bar comes from the request (XHR upload events; fetch has none), then the server's
// progress lines (application/x-ndjson, one JSON object per line) drive the loading bar.
document.getElementById('f').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var xhr = new XMLHttpRequest(), up = document.getElementById('p'), load = document.getElementById('l'),
      st = document.getElementById('st'), out = document.getElementById('out'), seen = 0,
      button = ev.target.querySelector('button');
  var stages = {reading: '读取 Reading', loading: '入库 Loading', swapping: '切换 Swapping'};
  up.hidden = false; up.value = 0; load.hidden = true; out.textContent = ''; button.disabled = true;
  st.textContent = '上传 Uploading';
  xhr.upload.onprogress = function (e) { if (e.lengthComputable) { up.max = e.total; up.value = e.loaded; } };
  xhr.upload.onload = function () { up.value = up.max; st.textContent = '处理中 Processing'; };
  function show(m) {
    if (m.stage === 'loading') {
      load.hidden = false; load.max = m.total || 1; load.value = m.done || 0;
      st.textContent = stages.loading + ' ' + m.done + ' / ' + m.total;
    } else if (m.stage) {
      st.textContent = stages[m.stage] || m.stage;
    } else if (m.result) {
      st.textContent = '完成 Published'; out.textContent = JSON.stringify(m.result, null, 2);
    } else if (m.error) {
      st.textContent = '失败 Failed';
      out.textContent = m.error.status + ' ' + m.error.title + '\\n' + (m.error.detail || '');
    }
  }
  function lines(end) {
    if (xhr.status !== 200) return;
    var text = xhr.responseText, i;
    if (end && text.length > seen && text.charAt(text.length - 1) !== '\\n') text += '\\n';
    while ((i = text.indexOf('\\n', seen)) >= 0) {
      var line = text.slice(seen, i); seen = i + 1;
      if (line) { try { show(JSON.parse(line)); } catch (e) { /* not a progress line */ } }
    }
  }
  xhr.onprogress = function () { lines(false); };
  xhr.onload = function () {
    if (xhr.status === 200) { lines(true); return; }
    var p = null;  // a refusal before the stream (problem+json): its title and detail
    try { p = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (p && typeof p === 'object') { show({error: {status: p.status || xhr.status, title: p.title || '', detail: p.detail}}); }
    else { st.textContent = '失败 Failed'; out.textContent = xhr.status + '\\n' + xhr.responseText; }
  };
  xhr.onerror = function () { st.textContent = '失败 Failed'; out.textContent = 'upload failed (network error)'; };
  xhr.onloadend = function () { button.disabled = false; };
  xhr.open('POST', '/api/layers');
  xhr.setRequestHeader('Accept', 'application/x-ndjson');
  xhr.setRequestHeader('X-CSRF-Token', ev.target.elements.csrf_token.value);
  xhr.send(new FormData(ev.target));
});
</script></body></html>"""
