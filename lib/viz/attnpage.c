/* attnpage.c - one record's self-contained HTML page: data as JSON, the picture inline, plain JavaScript
 * (lx_attn.h). The script below is this project's own; it needs no library and no network. */
#include <stdlib.h>
#include <string.h>

#include "lx_attn.h"

static const char *const page_css[] = {
	"body{font:14px/1.4 'DejaVu Sans',sans-serif;margin:16px 24px;color:#202020;background:#fff}",
	"h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px}",
	".sent{font-size:16px;margin:4px 0}.ans{margin:4px 0 10px}.ans b{font-size:16px}",
	".ans span{color:#666}#controls{margin:8px 0;display:flex;gap:14px;flex-wrap:wrap}",
	"#controls select{font:inherit}#state{color:#555}.cap{color:#555;font-size:12px;margin:4px 0 10px}",
	"#tokens{display:flex;flex-wrap:wrap;gap:4px;margin:6px 0}",
	".tok{padding:2px 6px;border-radius:3px;cursor:default;border:2px solid transparent;font-family:'DejaVu Sans Mono',monospace}",
	".tok.q{border-color:#1060c0}.row{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}",
	"#boxcol{flex:0 0 auto}#heatcol{flex:1 1 300px;min-width:0}",
	"#picture{position:relative;line-height:0}#picture img,#picture canvas{display:block}",
	"#picture canvas{position:absolute;left:0;top:0}",
	"#grid{display:grid;gap:6px;align-items:center;justify-items:start}.gl{font-size:12px;color:#555}",
	".thumb{border:2px solid #ddd;cursor:pointer;image-rendering:pixelated}.thumb.sel{border-color:#1060c0}",
	"#errors{color:#b00020;white-space:pre-wrap}footer{color:#777;font-size:12px;margin-top:20px}",
	NULL,
};

static const char *const page_js[] = {
	"(function () {",
	"'use strict';",
	"var D = JSON.parse(document.getElementById('data').textContent);",
	"var $ = function (id) { return document.getElementById(id); };",
	"var STOPS = [[252, 251, 246], [250, 232, 150], [245, 180, 70], [226, 104, 40], [180, 30, 48], [92, 6, 42]];",
	"function colour(v) {",
	"	if (!(v > 0)) v = 0;",
	"	if (v > 1) v = 1;",
	"	var n = STOPS.length - 1, t = v * n, i = Math.min(Math.floor(t), n - 1), c = [], k;",
	"	t -= i;",
	"	for (k = 0; k < 3; k++) c.push(Math.round(STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * t));",
	"	return 'rgb(' + c.join(',') + ')';",
	"}",
	"function ink(v) { return v > 0.55 ? '#fff' : '#202020'; }",
	"/* each map's values: little-endian uint16 of value * 65535 in base64 */",
	"function values(b64) {",
	"	var s = atob(b64), n = s.length >> 1, out = new Float32Array(n), i;",
	"	for (i = 0; i < n; i++) out[i] = (s.charCodeAt(2 * i) | s.charCodeAt(2 * i + 1) << 8) / 65535;",
	"	return out;",
	"}",
	"var K = {};",
	"D.kinds.forEach(function (k) { k.data = values(k.data16); K[k.key] = k; });",
	"/* the colour of value v in a map or row whose largest value is m, as the scale says */",
	"function scaled(v, m) { return D.scale === 'fixed' ? v : v / m; }",
	"function scaleText(m) { return D.scale === 'fixed' ? '100%' : D.scale === 'row' ? 'each row\\u2019s largest' : (100 * m).toFixed(1) + '%'; }",
	"var CROSS = {'cross': 1, 'cross-vision': 1, 'cross-lang-self': 1, 'cross-vision-self': 1};",
	"var S = {kind: D.start.kind, layer: D.start.layer, head: D.start.head, side: 't', q: D.start.token};",
	"function labels(side) { return side === 't' ? D.tokens : D.boxLabels; }",
	"function count(side) { return side === 't' ? D.tokens.length : D.boxLabels.length; }",
	"/* one row (query i) of a kind at a layer and head ('mean': the mean over heads) */",
	"function row(k, layer, head, i) {",
	"	var n = count(k.k), qn = count(k.q), out = new Array(n), h, j;",
	"	var size = qn * n, base = layer * k.heads * size + i * n;",
	"	if (head === 'mean' || k.heads === 1) {",
	"		for (j = 0; j < n; j++) out[j] = 0;",
	"		for (h = 0; h < k.heads; h++)",
	"			for (j = 0; j < n; j++) out[j] += k.data[base + h * size + j] / k.heads;",
	"	} else {",
	"		for (j = 0; j < n; j++) out[j] = k.data[base + head * size + j];",
	"	}",
	"	return out;",
	"}",
	"function matrix(k, layer, head) {",
	"	var m = [], i;",
	"	for (i = 0; i < count(k.q); i++) m.push(row(k, layer, head, i));",
	"	return m;",
	"}",
	"function maxOf(a) { var m = 0; a.forEach(function (v) { if (v > m) m = v; }); return m > 0 ? m : 1; }",
	"function headName(k, head) { return k.heads === 1 ? 'one map' : head === 'mean' ? 'mean of ' + k.heads + ' heads' : 'head ' + head; }",
	"function where(k, layer, head) { return k.name + ', ' + (k.layers > 1 ? k.layerName + ' ' + layer + ', ' : '') + headName(k, head); }",
	"/* the maps the two panels show for a query: the chosen kind where it fits, else the first of its companions",
	" * the page holds (at the chosen cross layer when both are cross layers' maps, else the last layer), else none */",
	"var COMPANIONS = {tv: ['cross'], tt: ['cross-lang-self', 'rollout-lang', 'lang'], vt: ['cross-vision'],",
	"	vv: ['cross-vision-self', 'rollout-vision', 'vision']};",
	"function companion(want) {",
	"	var k = K[S.kind], c = null, lc;",
	"	if (k.q === S.side && k.k === want) return {k: k, layer: S.layer, head: S.head};",
	"	COMPANIONS[S.side + want].forEach(function (key) { if (!c && K[key]) c = K[key]; });",
	"	if (!c) return null;",
	"	lc = CROSS[S.kind] && CROSS[c.key] ? S.layer : c.layers - 1;",
	"	return {k: c, layer: lc, head: k.heads === c.heads ? S.head : 'mean'};",
	"}",
	"function fillSelect(sel, items, value) {",
	"	sel.innerHTML = '';",
	"	items.forEach(function (it) {",
	"		var o = document.createElement('option');",
	"		o.value = String(it[0]);",
	"		o.textContent = it[1];",
	"		sel.appendChild(o);",
	"	});",
	"	sel.value = String(value);",
	"}",
	"function clampState() {",
	"	var k = K[S.kind] || K[D.start.kind];",
	"	S.kind = k.key;",
	"	if (!(S.layer >= 0 && S.layer < k.layers)) S.layer = k.layers - 1;",
	"	if (S.head !== 'mean' && !(S.head >= 0 && S.head < k.heads)) S.head = 'mean';",
	"	if (k.heads === 1) S.head = 'mean';",
	"	if (!(S.q >= 0 && S.q < count(S.side))) { S.side = 't'; S.q = 0; }",
	"}",
	"function controls() {",
	"	var k = K[S.kind], layers = [], heads = [['mean', 'mean of heads']], i;",
	"	fillSelect($('kind'), D.kinds.map(function (x) { return [x.key, x.name]; }), S.kind);",
	"	for (i = 0; i < k.layers; i++) layers.push([i, k.layers > 1 ? k.layerName + ' ' + i : 'all layers']);",
	"	for (i = 0; i < k.heads && k.heads > 1; i++) heads.push([i, 'head ' + i]);",
	"	fillSelect($('layer'), layers, S.layer);",
	"	fillSelect($('head'), heads, S.head);",
	"}",
	"function drawTokens() {",
	"	var c = companion('t'), w = c ? row(c.k, c.layer, c.head, S.q) : D.tokens.map(function () { return 0; });",
	"	var m = maxOf(w), box = $('tokens');",
	"	box.innerHTML = '';",
	"	D.tokens.forEach(function (t, i) {",
	"		var s = document.createElement('span'), v = scaled(w[i], m);",
	"		s.className = 'tok' + (S.side === 't' && S.q === i ? ' q' : '');",
	"		s.textContent = t;",
	"		s.title = (100 * w[i]).toFixed(1) + '%';",
	"		s.style.background = colour(v);",
	"		s.style.color = ink(v);",
	"		s.dataset.i = i;",
	"		s.addEventListener('mouseenter', function () { query('t', i); });",
	"		box.appendChild(s);",
	"	});",
	"	$('tokcap').textContent = c ? 'word colours: attention of ' + who() + ' over the words (' + where(c.k, c.layer, c.head) + '), 0 to ' + scaleText(m) : 'no map of these queries over the words on this page (--kinds)';",
	"}",
	"function who() { return S.side === 't' ? 'word ' + S.q + ' \\u201c' + D.tokens[S.q] + '\\u201d' : 'box \\u201c' + D.boxLabels[S.q] + '\\u201d'; }",
	"function drawBoxes() {",
	"	var cv = $('boxes'), g = cv.getContext('2d'), c = companion('v'), w = c ? row(c.k, c.layer, c.head, S.q) : D.boxes.map(function () { return 0; }), m = maxOf(w);",
	"	var order = w.map(function (v, i) { return i; }).sort(function (a, b) { return w[a] - w[b]; });",
	"	var top = order.slice(-5), placed = [];",
	"	cv.width = D.picture.w;",
	"	cv.height = D.picture.h;",
	"	g.clearRect(0, 0, cv.width, cv.height);",
	"	/* every box outlined, weakest first, the photo left as it is */",
	"	order.forEach(function (i) {",
	"		var b = D.boxes[i], v = scaled(w[i], m), t = 1 + Math.round(2 * v);",
	"		g.strokeStyle = colour(v);",
	"		g.lineWidth = t;",
	"		g.strokeRect(b[0] + t / 2, b[1] + t / 2, b[2] - b[0] - t, b[3] - b[1] - t);",
	"	});",
	"	top.forEach(function (i) {",
	"		var b = D.boxes[i], v = scaled(w[i], m);",
	"		g.strokeStyle = colour(0.3 + 0.7 * v);",
	"		g.lineWidth = 1 + 2 * v;",
	"		g.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);",
	"	});",
	"	g.font = '12px sans-serif';",
	"	top.forEach(function (i) {",
	"		var b = D.boxes[i], v = scaled(w[i], m), s = D.boxLabels[i] + ' ' + (100 * w[i]).toFixed(1) + '%', n;",
	"		var r = {w: g.measureText(s).width + 6, h: 16, y: b[1] + 2};",
	"		r.x = Math.max(0, Math.min(b[0] + 2, cv.width - r.w));",
	"		for (n = 0; n < 12 && placed.some(function (p) { return r.x < p.x + p.w && p.x < r.x + r.w && r.y < p.y + p.h && p.y < r.y + r.h; }); n++) {",
	"			r.y += r.h;",
	"			if (r.y + r.h > cv.height) r.y = 0;",
	"		}",
	"		placed.push(r);",
	"		g.fillStyle = colour(v);",
	"		g.fillRect(r.x, r.y, r.w, r.h);",
	"		g.strokeStyle = '#404040';",
	"		g.lineWidth = 1;",
	"		g.strokeRect(r.x + 0.5, r.y + 0.5, r.w - 1, r.h - 1);",
	"		g.fillStyle = ink(v);",
	"		g.fillText(s, r.x + 3, r.y + 12);",
	"	});",
	"	if (S.side === 'v') {",
	"		var b = D.boxes[S.q];",
	"		g.setLineDash([5, 3]);",
	"		g.strokeStyle = '#1060c0';",
	"		g.lineWidth = 2;",
	"		g.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);",
	"		g.setLineDash([]);",
	"	}",
	"	$('boxcap').textContent = c ? 'box colours: attention of ' + who() + ' over the boxes (' + where(c.k, c.layer, c.head) + '), 0 to ' + scaleText(m) + '; the 5 strongest labelled' : 'no map of these queries over the boxes on this page (--kinds)';",
	"}",
	"function boxAt(x, y) {",
	"	var best = -1, area = Infinity;",
	"	D.boxes.forEach(function (b, i) {",
	"		var a = (b[2] - b[0]) * (b[3] - b[1]);",
	"		if (x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3] && a < area) { best = i; area = a; }",
	"	});",
	"	return best;",
	"}",
	"var HEAT = {};",
	"function drawHeat() {",
	"	var k = K[S.kind], m = matrix(k, S.layer, S.head), ql = labels(k.q), kl = labels(k.k), cv = $('heat'), g = cv.getContext('2d');",
	"	var big = Math.max(ql.length, kl.length), s = Math.max(4, Math.min(22, Math.floor(440 / big))), i, j, mx = 0;",
	"	var lw = 0, fs = Math.min(12, Math.max(8, s - 2));",
	"	g.font = fs + 'px sans-serif';",
	"	ql.concat(kl).forEach(function (t) { lw = Math.max(lw, Math.min(110, g.measureText(t).width)); });",
	"	var x0 = lw + 10, y0 = lw + 10;",
	"	cv.width = x0 + kl.length * s + 10;",
	"	cv.height = y0 + ql.length * s + 10;",
	"	m.forEach(function (r) { r.forEach(function (v) { if (v > mx) mx = v; }); });",
	"	if (!(mx > 0) || D.scale === 'fixed') mx = 1;",
	"	g.font = fs + 'px sans-serif';",
	"	g.fillStyle = '#fff';",
	"	g.fillRect(0, 0, cv.width, cv.height);",
	"	for (i = 0; i < ql.length; i++)",
	"		for (j = 0; j < kl.length; j++) {",
	"			g.fillStyle = colour(m[i][j] / (D.scale === 'row' ? maxOf(m[i]) : mx));",
	"			g.fillRect(x0 + j * s, y0 + i * s, s, s);",
	"		}",
	"	g.fillStyle = '#202020';",
	"	g.textBaseline = 'middle';",
	"	g.textAlign = 'right';",
	"	var step = Math.ceil((fs + 2) / s);",
	"	for (i = 0; i < ql.length; i += step) g.fillText(ql[i], x0 - 4, y0 + i * s + s / 2, 110);",
	"	for (j = 0; j < kl.length; j += step) {",
	"		g.save();",
	"		g.translate(x0 + j * s + s / 2, y0 - 4);",
	"		g.rotate(-Math.PI / 2);",
	"		g.textAlign = 'left';",
	"		g.fillText(kl[j], 0, 0, 110);",
	"		g.restore();",
	"	}",
	"	if (k.q === S.side) {",
	"		g.strokeStyle = '#1060c0';",
	"		g.lineWidth = 2;",
	"		g.strokeRect(x0 - 1, y0 + S.q * s - 1, kl.length * s + 2, s + 2);",
	"	}",
	"	HEAT = {x0: x0, y0: y0, s: s, q: ql.length, k: kl.length, side: k.q};",
	"	$('heatcap').textContent = where(k, S.layer, S.head) + ': rows are queries (' + (k.q === 't' ? 'words' : 'boxes') + '), columns keys (' + (k.k === 't' ? 'words' : 'boxes') + '); colour from 0 to ' + (D.scale === 'row' ? 'each row\\u2019s largest' : mx.toFixed(3));",
	"}",
	"function drawGrid() {",
	"	var k = K[S.kind], box = $('grid'), L, h, heads = k.heads > 1 ? k.heads + 1 : 1;",
	"	box.innerHTML = '';",
	"	box.style.gridTemplateColumns = 'auto repeat(' + heads + ', auto)';",
	"	var big = Math.max(count(k.q), count(k.k)), s = Math.max(1, Math.min(4, Math.floor(120 / big)));",
	"	function cell(L, h) {",
	"		var cv = document.createElement('canvas'), g = cv.getContext('2d'), m = matrix(k, L, h), mx = 0;",
	"		cv.width = count(k.k) * s;",
	"		cv.height = count(k.q) * s;",
	"		m.forEach(function (r) { r.forEach(function (v) { if (v > mx) mx = v; }); });",
	"		if (D.scale === 'fixed') mx = 1;",
	"		m.forEach(function (r, i) { var rm = D.scale === 'row' ? maxOf(r) : mx || 1; r.forEach(function (v, j) { g.fillStyle = colour(v / rm); g.fillRect(j * s, i * s, s, s); }); });",
	"		cv.className = 'thumb' + (L === S.layer && String(h) === String(S.head) ? ' sel' : '');",
	"		cv.title = where(k, L, h);",
	"		cv.dataset.layer = L;",
	"		cv.dataset.head = h;",
	"		cv.addEventListener('click', function () { set({layer: L, head: h}); });",
	"		return cv;",
	"	}",
	"	function text(t) { var d = document.createElement('div'); d.className = 'gl'; d.textContent = t; return d; }",
	"	box.appendChild(text(''));",
	"	for (h = 0; h < heads; h++) box.appendChild(text(k.heads === 1 ? '' : h < k.heads ? 'head ' + h : 'mean'));",
	"	for (L = 0; L < k.layers; L++) {",
	"		box.appendChild(text(k.layers > 1 ? k.layerName + ' ' + L : ''));",
	"		for (h = 0; h < heads; h++) box.appendChild(cell(L, k.heads === 1 || h === k.heads ? 'mean' : h));",
	"	}",
	"}",
	"function render() {",
	"	clampState();",
	"	controls();",
	"	drawTokens();",
	"	drawBoxes();",
	"	drawHeat();",
	"	drawGrid();",
	"	var st = $('state');",
	"	st.dataset.kind = S.kind;",
	"	st.dataset.layer = S.layer;",
	"	st.dataset.head = S.head;",
	"	st.dataset.query = S.side + S.q;",
	"	st.textContent = where(K[S.kind], S.layer, S.head) + '; query: ' + who();",
	"	document.body.dataset.ok = '1';",
	"}",
	"function hash() {",
	"	var h = 'kind=' + S.kind + '&layer=' + S.layer + '&head=' + S.head + '&' + (S.side === 't' ? 'token=' : 'box=') + S.q;",
	"	if (location.hash.slice(1) !== h) history.replaceState(null, '', '#' + h);",
	"}",
	"function set(ch) {",
	"	Object.keys(ch).forEach(function (x) { S[x] = ch[x]; });",
	"	render();",
	"	hash();",
	"}",
	"function query(side, i) { if (S.side !== side || S.q !== i) set({side: side, q: i}); }",
	"function applyHash() {",
	"	var p = {};",
	"	location.hash.replace(/^#/, '').split('&').forEach(function (kv) {",
	"		var a = kv.split('=');",
	"		if (a.length === 2) p[decodeURIComponent(a[0])] = decodeURIComponent(a[1]);",
	"	});",
	"	if (p.kind) S.kind = p.kind;",
	"	if (p.layer !== undefined) S.layer = parseInt(p.layer, 10);",
	"	if (p.head !== undefined) S.head = p.head === 'mean' ? 'mean' : parseInt(p.head, 10);",
	"	if (p.token !== undefined) { S.side = 't'; S.q = parseInt(p.token, 10); }",
	"	if (p.box !== undefined) { S.side = 'v'; S.q = parseInt(p.box, 10); }",
	"	render();",
	"}",
	"$('kind').addEventListener('change', function () { set({kind: this.value, layer: -1}); });",
	"$('layer').addEventListener('change', function () { set({layer: parseInt(this.value, 10)}); });",
	"$('head').addEventListener('change', function () { set({head: this.value === 'mean' ? 'mean' : parseInt(this.value, 10)}); });",
	"$('boxes').addEventListener('mousemove', function (ev) {",
	"	var r = this.getBoundingClientRect(), i = boxAt((ev.clientX - r.left) * this.width / r.width, (ev.clientY - r.top) * this.height / r.height);",
	"	if (i >= 0) query('v', i);",
	"});",
	"$('heat').addEventListener('mousemove', function (ev) {",
	"	var r = this.getBoundingClientRect(), y = (ev.clientY - r.top) * this.height / r.height, i = Math.floor((y - HEAT.y0) / HEAT.s);",
	"	if (i >= 0 && i < HEAT.q) query(HEAT.side, i);",
	"});",
	"window.addEventListener('hashchange', applyHash);",
	"applyHash();",
	"})();",
	NULL,
};

void lx_html_text(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* A JSON string that is also safe inside a script element (no '<', '>' or '&' as themselves). */
static void json_str(FILE *f, const char *s) { lx_json_str(f, s, strlen(s), LX_JSON_SCRIPT); }

static void json_strs(FILE *f, const char *const *s, int n)
{
	int i;

	fputc('[', f);
	for (i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		json_str(f, s[i]);
	}
	fputc(']', f);
}

/* A number as JSON: 4 significant digits are more than a picture can show. */
static void json_num(FILE *f, float v)
{
	if (v != v || v - v != 0) /* NaN or infinite: not JSON */
		fputs("0", f);
	else if (v == 0)
		fputc('0', f);
	else
		fprintf(f, "%.4g", (double)v);
}

/* The map's values as little-endian uint16 of value * 65535 (clamped to [0, 1], rounded), in base64: a
 * quarter of the size of the values as JSON text, to within 8e-6. */
static lx_status json_kind(FILE *f, const lx_page_kind *k, lx_err *e)
{
	size_t n = (size_t)k->a.layers * (size_t)k->a.heads * (size_t)k->a.q * (size_t)k->a.k, i;
	unsigned char *q = malloc(2 * n + 1);
	char *b64 = NULL;
	lx_status rc;

	if (!q)
		return lx_errf(e, LX_EIO, "out of memory");
	for (i = 0; i < n; i++) {
		float v = k->a.p[i];
		unsigned u = v > 0 ? (v < 1 ? (unsigned)(v * 65535.0f + 0.5f) : 65535u) : 0u; /* NaN: 0 */
		q[2 * i] = (unsigned char)(u & 0xff);
		q[2 * i + 1] = (unsigned char)(u >> 8);
	}
	rc = lx_base64(q, 2 * n, &b64, e);
	free(q);
	if (rc)
		return rc;
	fputs("{\"key\":", f);
	json_str(f, k->key);
	fputs(",\"name\":", f);
	json_str(f, k->name);
	fputs(",\"layerName\":", f);
	json_str(f, k->layer_name);
	fprintf(f, ",\"q\":\"%c\",\"k\":\"%c\",\"layers\":%d,\"heads\":%d,\"data16\":\"%s\"}", k->q, k->k,
	        k->a.layers, k->a.heads, b64);
	free(b64);
	return LX_OK;
}

static lx_status json_data(FILE *f, const lx_page *p, lx_err *e)
{
	static const char *const scales[] = {"map", "fixed", "row"};
	lx_status rc;
	int i;

	fputs("{\"id\":", f);
	json_str(f, p->id);
	fprintf(f, ",\"record\":%ld,\"tokens\":", p->record);
	json_strs(f, p->tokens, p->T);
	fputs(",\"boxLabels\":", f);
	json_strs(f, p->box_labels, p->N);
	fputs(",\"boxes\":[", f);
	for (i = 0; i < p->N; i++)
		fprintf(f, "%s[%.1f,%.1f,%.1f,%.1f]", i ? "," : "", (double)p->boxes[i * 4], (double)p->boxes[i * 4 + 1],
		        (double)p->boxes[i * 4 + 2], (double)p->boxes[i * 4 + 3]);
	fprintf(f, "],\"picture\":{\"w\":%d,\"h\":%d},\"start\":{\"kind\":", p->pic_w, p->pic_h);
	json_str(f, p->start_kind);
	fprintf(f, ",\"layer\":%d,\"head\":", p->start_layer);
	if (p->start_head < 0)
		fputs("\"mean\"", f);
	else
		fprintf(f, "%d", p->start_head);
	fprintf(f, ",\"token\":%d},\"scale\":\"%s\",\"kinds\":[", p->start_token, scales[p->scale]);
	for (i = 0; i < p->nkinds; i++) {
		if (i)
			fputc(',', f);
		if ((rc = json_kind(f, &p->kinds[i], e)))
			return rc;
	}
	fputc(']', f);
	if (p->rel_words) {
		fprintf(f, ",\"relevance\":{\"answer\":%ld,\"words\":[", p->rel_answer);
		for (i = 0; i < p->T; i++) {
			if (i)
				fputc(',', f);
			json_num(f, p->rel_words[i]);
		}
		fputs("],\"boxes\":[", f);
		for (i = 0; i < p->N; i++) {
			if (i)
				fputc(',', f);
			json_num(f, p->rel_boxes[i]);
		}
		fputs("]}", f);
	}
	fputc('}', f);
	return LX_OK;
}

static void lines(FILE *f, const char *const *l, const char *sep)
{
	for (; *l; l++) {
		fputs(*l, f);
		fputs(sep, f);
	}
}

static void answers(FILE *f, const lx_page *p)
{
	int i;

	if (p->nanswers == 0)
		return;
	fputs("<p class=\"ans\">answer: <b>", f);
	lx_html_text(f, p->answers[0]);
	fprintf(f, "</b> <span>%.3f</span>", (double)p->scores[0]);
	for (i = 1; i < p->nanswers && i < 5; i++) {
		fputs(i == 1 ? " &nbsp; others: " : ", ", f);
		lx_html_text(f, p->answers[i]);
		fprintf(f, " <span>%.3f</span>", (double)p->scores[i]);
	}
	fputs("</p>\n", f);
}

/* The relevance maps of lx-explain: the words coloured by rel_words (each value over the largest), the
 * picture of the boxes coloured by rel_boxes. */
static void relevance(FILE *f, const lx_page *p)
{
	float wmax = 0;
	int i;

	if (!p->rel_words)
		return;
	for (i = 0; i < p->T; i++)
		if (p->rel_words[i] > wmax)
			wmax = p->rel_words[i];
	fputs("<h2>Relevance: what made the answer", f);
	if (p->rel_answer_name) {
		fputs(" &ldquo;", f);
		lx_html_text(f, p->rel_answer_name);
		fputs("&rdquo;", f);
	}
	fprintf(f, "</h2>\n<p class=\"cap\">The relevance maps of lx-explain for answer %ld (Chefer, Gur &amp; Wolf "
	           "2021): the words by their relevance (row 0 of relevance_tt), the boxes by theirs (row 0 of "
	           "relevance_ti), each over the largest.</p>\n<div id=\"relwords\" style=\"display:flex;flex-wrap:wrap;gap:4px;margin:6px 0\">", p->rel_answer);
	for (i = 0; i < p->T; i++) {
		float v = wmax > 0 && p->rel_words[i] > 0 ? p->rel_words[i] / wmax : 0;
		fprintf(f, "<span class=\"tok\" style=\"background:#%06x;color:#%06x\" title=\"%.4g\">",
		        (unsigned)lx_colormap(v), v > 0.55f ? 0xffffffu : 0x202020u, (double)p->rel_words[i]);
		lx_html_text(f, p->tokens[i]);
		fputs("</span>", f);
	}
	fprintf(f, "</div>\n<img id=\"relboxes\" alt=\"the boxes by relevance\" src=\"data:image/png;base64,%s\" "
	           "width=\"%d\" height=\"%d\">\n", p->rel_picture_b64, p->rel_w, p->rel_h);
}

static void links(FILE *f, const lx_page *p)
{
	int i;

	fputs("<footer>Hover a word or a box to see where it attends; pick the map, layer and head above, or click a "
	      "small map. The address keeps the view (#kind=&hellip;&amp;layer=&hellip;&amp;head=&hellip;&amp;"
	      "token=&hellip;). Files of this record: ", f);
	for (i = 0; i < p->nkinds && (p->png || p->npy); i++) {
		fputs(p->kinds[i].key, f);
		fputs(" (", f);
		if (p->png) {
			fputs("<a href=\"", f);
			lx_html_text(f, p->files);
			fprintf(f, ".%s.png\">.png</a>%s", p->kinds[i].key, p->npy ? ", " : "");
		}
		if (p->npy) {
			fputs("<a href=\"", f);
			lx_html_text(f, p->files);
			fprintf(f, ".%s.npy\">.npy</a>", p->kinds[i].key);
		}
		fputs("), ", f);
	}
	fputs("<a href=\"", f);
	lx_html_text(f, p->files);
	fputs(".boxes.png\">boxes.png</a>; <a href=\"index.html\">all records</a>.</footer>\n", f);
}

lx_status lx_page_write(FILE *f, const lx_page *p, const char *path, lx_err *e)
{
	lx_status rc;

	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>lx-attnviz: ", f);
	lx_html_text(f, p->id);
	fputs("</title>\n<style>\n", f);
	lines(f, page_css, "\n");
	fputs("</style>\n</head>\n<body data-ok=\"0\" data-errors=\"0\">\n<pre id=\"errors\"></pre>\n<script>\n"
	      "window.onerror = function (m, s, l) {\n"
	      "\tdocument.getElementById('errors').textContent += m + ' (line ' + l + ')\\n';\n"
	      "\tdocument.body.dataset.errors = String(+document.body.dataset.errors + 1);\n"
	      "\tdocument.body.dataset.ok = '0';\n};\n</script>\n<h1>", f);
	lx_html_text(f, p->id);
	fprintf(f, " <small style=\"color:#777;font-weight:normal\">record %ld</small></h1>\n", p->record);
	if (p->sent) {
		fputs("<p class=\"sent\">", f);
		lx_html_text(f, p->sent);
		fputs("</p>\n", f);
	}
	answers(f, p);
	fputs("<div id=\"controls\"><label>map <select id=\"kind\"></select></label>"
	      "<label>layer <select id=\"layer\"></select></label><label>head <select id=\"head\"></select></label>"
	      "</div>\n<p id=\"state\"></p>\n<h2>Words</h2>\n<div id=\"tokens\"></div>\n<p class=\"cap\" id=\"tokcap\">"
	      "</p>\n<div class=\"row\">\n<div id=\"boxcol\">\n<h2>Boxes</h2>\n<div id=\"picture\"><img alt=\"the image\" src=\""
	      "data:", f);
	fputs(p->picture_jpeg ? "image/jpeg" : "image/png", f);
	fputs(";base64,", f);
	fputs(p->picture_b64, f);
	fprintf(f, "\" width=\"%d\" height=\"%d\"><canvas id=\"boxes\" width=\"%d\" height=\"%d\"></canvas></div>\n",
	        p->pic_w, p->pic_h, p->pic_w, p->pic_h);
	fprintf(f, "<style>#boxcol{max-width:%dpx}</style>\n", p->pic_w > 360 ? p->pic_w : 360);
	fputs("<p class=\"cap\" id=\"boxcap\"></p>\n<p class=\"cap\">", f);
	lx_html_text(f, p->picture_note);
	fputs("</p>\n</div>\n<div id=\"heatcol\">\n<h2>Map</h2>\n<canvas id=\"heat\"></canvas>\n<p class=\"cap\" id=\"heatcap\"></p>\n"
	      "</div>\n</div>\n", f);
	relevance(f, p);
	fputs("<h2>All layers and heads of this map</h2>\n<div id=\"grid\"></div>\n", f);
	links(f, p);
	fputs("<script type=\"application/json\" id=\"data\">", f);
	if ((rc = json_data(f, p, e)))
		return rc;
	fputs("</script>\n<script>\n", f);
	lines(f, page_js, "\n");
	fputs("</script>\n</body>\n</html>\n", f);
	if (ferror(f))
		return lx_errf(e, LX_EIO, "%s: write failed", path);
	return LX_OK;
}
