"""The web page at ``/``: one self-contained HTML document (inline CSS and JS, nothing
loaded from elsewhere) that calls the API with fetch()."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shopaug serve</title>
<style>
 body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
 header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:16px;
   align-items:baseline;flex-wrap:wrap}
 header a{color:#9cc3ff} main{display:grid;grid-template-columns:1fr 1fr;gap:16px;padding:16px}
 @media(max-width:800px){main{grid-template-columns:1fr}}
 section{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 3px #0002}
 h2{margin:0 0 10px;font-size:17px} input,select,button{font:inherit;padding:6px 8px}
 input[type=search]{width:60%} ol{padding-left:24px} li{margin:4px 0}
 .meta{color:#667;font-size:13px} .badge{display:inline-block;padding:1px 8px;
   border-radius:10px;font-size:12px;margin-left:6px}
 .history,.model{background:#d9f2e3} .profile{background:#e4e1fb}
 .fallback{background:#fde7c8} .err{color:#b00020}
</style></head><body>
<header><strong>shopaug</strong><span id="info" class="meta">loading&hellip;</span>
 <a href="/report" target="_blank">experiment report</a> <a href="/docs">API docs</a></header>
<main>
<section><h2>Search</h2>
 <form id="search-form"><input id="q" type="search" maxlength="200"
   placeholder="search the catalog" aria-label="search query" required>
  <button type="submit">Search</button></form>
 <div id="search-status" class="meta"></div><ol id="search-results"></ol></section>
<section><h2>Recommendations</h2>
 <label>User <select id="user" aria-label="user"></select></label>
 <input id="new-user" placeholder="new user id" hidden aria-label="new user id">
 <button id="rec-go">Recommend</button>
 <div id="rec-status" class="meta"></div><ol id="rec-results"></ol></section>
</main>
<script>
const $ = (id) => document.getElementById(id);
function esc(s){return String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;',
  '"':'&quot;',"'":'&#39;'}[c]));}
async function api(path, opts){
  const r = await fetch(path, opts); const body = await r.json();
  if(!r.ok) throw new Error(body.error || r.statusText); return body;}
function row(it){
  const price = it.price != null ? ` &middot; ${Number(it.price).toFixed(2)}` : '';
  return `<li data-item="${esc(it.item_id)}">`+
    `<span class="title">${esc(it.title||it.item_id)}</span>`+
    ` <span class="meta">${esc(it.item_id)}${price} &middot; score ${it.score}</span></li>`;}
async function doSearch(ev){
  ev.preventDefault(); const q = $('q').value.trim(); if(!q) return;
  $('search-status').textContent = 'searching…'; $('search-results').innerHTML = '';
  try{ const r = await api('/search?k=10&q=' + encodeURIComponent(q));
    $('search-status').textContent = `${r.items.length} results (model: ${r.model})`;
    $('search-results').innerHTML = r.items.map(row).join('');
  }catch(e){ $('search-status').innerHTML = `<span class="err">${esc(e.message)}</span>`; }}
async function doRecommend(){
  let user = $('user').value;
  if(user === '__new__') user = $('new-user').value.trim() || 'new-visitor';
  $('rec-status').textContent = 'loading…'; $('rec-results').innerHTML = '';
  try{ const r = await api('/recommend/' + encodeURIComponent(user) + '?k=10');
    const why = r.source === 'fallback' ? 'fallback' : r.reason;
    $('rec-status').innerHTML = `${esc(r.model)} <span class="badge ${esc(why)}" id="reason">`+
      `${esc(r.source)}: ${esc(r.reason)}</span>` + (r.detail ? ` ${esc(r.detail)}` : '');
    $('rec-results').innerHTML = r.items.map(row).join('');
  }catch(e){ $('rec-status').innerHTML = `<span class="err">${esc(e.message)}</span>`; }}
async function init(){
  $('search-form').addEventListener('submit', doSearch);
  $('rec-go').addEventListener('click', doRecommend);
  $('user').addEventListener('change', () => {
    $('new-user').hidden = $('user').value !== '__new__'; doRecommend(); });
  try{ const h = await api('/health'); const b = h.best;
    $('info').textContent = `${h.task} run ${h.run} · best: ${b.model} (${b.arm}) `+
      `${b.metric}=${b.value == null ? '?' : Number(b.value).toFixed(4)} · v${h.version}`;
    if(h.task !== 'rec'){ $('rec-go').disabled = true; return; }
    const u = await api('/users?limit=20');
    $('user').innerHTML = u.users.map(x => `<option value="${esc(x.user_id)}">${esc(x.user_id)}`+
      ` (${x.history_items} items)</option>`).join('') +
      '<option value="__new__">new user</option>';
  }catch(e){ $('info').innerHTML = `<span class="err">${esc(e.message)}</span>`; }}
init();
</script></body></html>
"""
