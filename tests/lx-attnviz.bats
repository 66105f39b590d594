#!/usr/bin/env bats
# lx-attnviz: records made in Python -> lx-encode --attentions (tiny model) -> lx-attnviz; the files it writes
# checked with numpy, PIL and headless Chromium; bad input.

load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	VIZ="$BIN/lx-attnviz"
	AV="$PY $TOP/tests/py/attnviz.py"
	SEP=--separate-stderr
}

# Encoded records of the six questions on three scenes in $T/enc.mp (extra arguments go to attnviz.py).
encoded() {
	$AV records "$@" > "$T/in.mp"
	"$BIN/lx-encode" -m "$FIX/tiny" --attentions < "$T/in.mp" > "$T/enc.mp"
}

# lx-attnviz on a stream, for `run` with stderr apart.
viz() {
	local in=$1
	shift
	"$VIZ" "$@" < "$in"
}

# The first two records' files are all there and the third's are not; index.html links the two.
only_first_two() {
	for q in 132417000 132417001; do
		for f in cross cross-vision rollout-lang rollout-vision; do
			[ -s "$T/out/$q.$f.npy" ]
		done
		[ -s "$T/out/$q.boxes.png" ] && [ -s "$T/out/$q.html" ]
	done
	[ -z "$(ls "$T/out" | grep '^573195000')" ]
	[ "$(grep -c '<tr><td><a href=' "$T/out/index.html")" -eq 2 ]
}

@test "writes every file of every record: maps as .npy equal to the stream, PNGs of the expected sizes, pages" {
	encoded
	$AV photos "$T/photos"
	"$VIZ" -o "$T/out" --images "$T/photos" --cell 7 --kinds all --png < "$T/enc.mp"
	$AV check "$T/out" 7 "$T/photos" < "$T/enc.mp"
	[ "$(ls "$T/out" | wc -l)" -eq $((6 * 18 + 1)) ]
}

@test "draws the boxes over the JPEG or PNG photo, leaving it as it is outside the boxes" {
	encoded
	$AV edit shrink < "$T/enc.mp" > "$T/small.mp"
	$AV photos "$T/photos"
	"$VIZ" -o "$T/out" --images "$T/photos" --cell 5 --top 0 --kinds all --png < "$T/small.mp"
	$AV check "$T/out" 5 "$T/photos" 50000 < "$T/small.mp"
}

@test "draws the boxes on a blank canvas of the image's size without --images" {
	encoded
	$AV edit shrink < "$T/enc.mp" > "$T/small.mp"
	"$VIZ" -o "$T/out" --cell 5 --top 0 --kinds all --png < "$T/small.mp"
	$AV check "$T/out" 5 "" 50000 < "$T/small.mp"
	grep -q 'No photo of COCO_train2014_000000132417 (no --images given): a blank canvas of the image' "$T/out/132417000.html"
}

@test "labels words with their ids and boxes with their numbers when tokens and object names are absent" {
	encoded --bare
	"$VIZ" -o "$T/out" --cell 6 --kinds all --png < "$T/enc.mp"
	$AV check "$T/out" 6 < "$T/enc.mp"
}

@test "names files by question_id, else img_id, else the record's number" {
	encoded
	$AV edit ids < "$T/enc.mp" > "$T/ids.mp"
	"$VIZ" -o "$T/out" --cell 5 --kinds all --png < "$T/ids.mp"
	$AV check "$T/out" 5 < "$T/ids.mp"
	[ -s "$T/out/COCO_train2014_000000132417.html" ]
	[ -s "$T/out/record-3.cross.png" ]
}

@test "gives a record whose name is already taken its number as well" {
	encoded
	$PY -c 'import sys; from lxtest import read_records, write_records; r = read_records(); write_records([r[0], r[0]])' < "$T/enc.mp" > "$T/twice.mp"
	"$VIZ" -o "$T/out" < "$T/twice.mp"
	[ -s "$T/out/132417000.html" ]
	[ -s "$T/out/132417000-2.html" ]
	grep -q 'href="132417000-2.html"' "$T/out/index.html"
}

@test "the page renders in headless Chromium with no script error and follows the mouse, the address and the menus" {
	encoded
	$AV photos "$T/photos"
	"$VIZ" -o "$T/out" --images "$T/photos" --kinds all < "$T/enc.mp"
	mkdir -p "$TOP/tests/artifacts"
	run $PY "$TOP/tests/py/page.py" "$T/out/132417000.html" "$TOP/tests/artifacts/attnviz-page.png"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 6 ]
	$PY -c 'import sys; from PIL import Image; w, h = Image.open(sys.argv[1]).size; assert w == 1400 and h > 700, (w, h)' "$TOP/tests/artifacts/attnviz-page.png"
}

@test "the page's DOM, dumped by Chromium, shows the head the address asks for" {
	encoded
	"$VIZ" -o "$T/out" --kinds all < "$T/enc.mp"
	timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
		--disable-component-update --disable-sync --user-data-dir="$T/profile" \
		--dump-dom "file://$T/out/573195001.html#kind=cross-vision&layer=0&head=3&box=7" > "$T/dom.html" 2> /dev/null
	grep -q '<body data-ok="1" data-errors="0">' "$T/dom.html"
	grep -q '<pre id="errors"></pre>' "$T/dom.html"
	grep -q 'id="state" data-kind="cross-vision" data-layer="0" data-head="3" data-query="v7">cross-attention, boxes over words, cross layer 0, head 3; query: box “#7 ' "$T/dom.html"
}

@test "the page needs nothing from outside: no external script, style, picture or font" {
	encoded
	"$VIZ" -o "$T/out" < "$T/enc.mp"
	for p in "$T"/out/*[0-9].html; do
		! grep -Eq '(src|href)="?(https?:)?//' "$p"
		! grep -Eq '<link|@import|url\(' "$p"
		[ "$(grep -c '<script' "$p")" -eq 3 ]
	done
}

@test "chooses the word, layer and head of the boxes picture" {
	encoded
	"$VIZ" -o "$T/out" --token 2 --layer 0 --head 1 < "$T/enc.mp"
	"$VIZ" -o "$T/out2" < "$T/enc.mp"
	! cmp -s "$T/out/132417000.boxes.png" "$T/out2/132417000.boxes.png"
	cmp "$T/out/132417000.cross.npy" "$T/out2/132417000.cross.npy"
	grep -q '"start":{"kind":"cross","layer":0,"head":1,"token":2}' "$T/out/132417000.html"
	grep -q '"start":{"kind":"cross","layer":1,"head":"mean","token":0}' "$T/out2/132417000.html"
}

@test "frames the box the chosen word attends to most, in the chosen layer and head" {
	encoded
	"$VIZ" -o "$T/out" --top 1 < "$T/enc.mp"
	$AV strongest "$T/out" 0 1 mean < "$T/enc.mp"
	"$VIZ" -o "$T/out2" --top 1 --token 2 --layer 0 --head 3 < "$T/enc.mp"
	$AV strongest "$T/out2" 2 0 3 < "$T/enc.mp"
	! $AV strongest "$T/out2" 2 0 mean < "$T/enc.mp" 2> /dev/null
}

@test "stops at a record without attentions, with every earlier record's files written" {
	encoded
	$AV edit no-attentions < "$T/enc.mp" > "$T/bad.mp"
	run $SEP viz "$T/bad.mp" -o "$T/out"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-attnviz: stdin: record 3 (id 573195000): no field language_attentions: make the records with lx-encode --attentions" ]
	only_first_two
}

@test "stops at a record with one token more than its maps" {
	encoded
	$AV edit tokens < "$T/enc.mp" > "$T/bad.mp"
	run $SEP viz "$T/bad.mp" -o "$T/out"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-attnviz: stdin: record 3 (id 573195000): field tokens: 11 tokens, but the attention maps have 10" ]
	only_first_two
}

@test "stops at a record with one object name less than its boxes" {
	encoded
	$AV edit objects < "$T/enc.mp" > "$T/bad.mp"
	run $SEP viz "$T/bad.mp" -o "$T/out"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-attnviz: stdin: record 3 (id 573195000): field objects: 35 object names, but the attention maps have 36" ]
	only_first_two
}

@test "stops at a record with one pixel box less than its maps" {
	encoded
	$AV edit boxes < "$T/enc.mp" > "$T/bad.mp"
	run $SEP viz "$T/bad.mp" -o "$T/out"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-attnviz: stdin: record 3 (id 573195000): field boxes: 35 boxes, but the attention maps have 36" ]
	only_first_two
}

@test "stops at a record whose maps disagree on the number of boxes" {
	encoded
	$AV edit shapes < "$T/enc.mp" > "$T/bad.mp"
	run $SEP viz "$T/bad.mp" -o "$T/out"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-attnviz: stdin: record 3 (id 573195000): field cross_encoder_attentions: shape [2, 4, 10, 35], expected [2, 4, 10, 36] to match the other maps (T = 10 words, N = 36 boxes, 4 heads)" ]
	only_first_two
}

@test "stops at a photo that is not a picture" {
	encoded
	mkdir -p "$T/photos"
	echo "not a picture" > "$T/photos/COCO_train2014_000000573195.jpg"
	run $SEP viz "$T/enc.mp" -o "$T/out" --images "$T/photos"
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-attnviz: stdin: record 3 (id 573195000): $T/photos/COCO_train2014_000000573195.jpg: not a PNG or JPEG image" ]
	only_first_two
}

@test "stops at a JPEG photo cut short" {
	encoded
	$AV photos "$T/full"
	mkdir -p "$T/photos"
	head -c 2000 "$T/full/COCO_train2014_000000132417.jpg" > "$T/photos/COCO_train2014_000000573195.jpg"
	run $SEP viz "$T/enc.mp" -o "$T/out" --images "$T/photos"
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-attnviz: stdin: record 3 (id 573195000): $T/photos/COCO_train2014_000000573195.jpg: not a readable JPEG image: Premature end of JPEG file" ]
	only_first_two
}

@test "stops at a PNG photo cut short" {
	encoded
	$AV photos "$T/full"
	mkdir -p "$T/photos"
	f="$T/full/COCO_train2014_000000578174.png"
	head -c $(($(stat -c %s "$f") / 2)) "$f" > "$T/photos/COCO_train2014_000000578174.png"
	run $SEP viz "$T/enc.mp" -o "$T/out" --images "$T/photos"
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-attnviz: stdin: record 5 (id 578174000): $T/photos/COCO_train2014_000000578174.png: not a readable PNG image: Read Error" ]
	[ "$(grep -c '<tr><td><a href=' "$T/out/index.html")" -eq 4 ]
}

@test "stops at a --token beyond a record's words" {
	encoded
	run $SEP viz "$T/enc.mp" -o "$T/out" --token 8
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-attnviz: stdin: record 1 (id 132417000): --token 8, but the record has 8 words" ]
}

@test "reports a stream cut inside a record after writing the records before it" {
	encoded
	size=$(stat -c %s "$T/enc.mp")
	head -c $((size - 100)) "$T/enc.mp" > "$T/cut.mp"
	run $SEP viz "$T/cut.mp" -o "$T/out"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-attnviz: stdin: record 6: the stream ends inside the record" ]
	[ "$(grep -c '<tr><td><a href=' "$T/out/index.html")" -eq 5 ]
}

@test "draws lx-explain's relevance: words and boxes coloured by it beside the attention; without it, nothing changes" {
	encoded
	$AV edit shrink < "$T/enc.mp" > "$T/small.mp"
	"$BIN/lx-explain" -m "$FIX/tiny" < "$T/small.mp" > "$T/rel.mp"
	"$VIZ" -o "$T/plain" --top 0 < "$T/small.mp"
	"$VIZ" -o "$T/rel" --top 0 < "$T/rel.mp"
	# every file but the pages is the same, and each record has its relevance picture besides
	[ "$(ls "$T/rel" | grep -vc relevance.png)" -eq "$(ls "$T/plain" | wc -l)" ]
	for f in "$T"/plain/*; do
		case "$f" in *.html) ;; *) cmp "$f" "$T/rel/${f##*/}" ;; esac
	done
	"$PY" - "$T/rel.mp" "$T/plain" "$T/rel" <<'PY'
import json, re, sys
import numpy as np
import attnviz, lxtest

recs, plain, rel = lxtest.read_records(open(sys.argv[1], "rb")), sys.argv[2], sys.argv[3]
wine = np.array([92, 6, 42])               # the top of the colour scale (lx_colormap(1))
for r in recs:
    stem = str(r["question_id"])
    page = open(f"{rel}/{stem}.html").read()
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page).group(1))
    rv = data["relevance"]
    assert rv["answer"] == r["relevance_answer"]
    for key, field in (("words", "relevance_words"), ("boxes", "relevance_boxes")):
        np.testing.assert_allclose(rv[key], r[field], rtol=1e-3, atol=1e-7, err_msg=f"{stem} {key}")
    # the words: one span each, the most relevant in the darkest colour of the scale
    spans = re.findall(r'<span class="tok" style="background:#([0-9a-f]{6});[^"]*" title="[^"]*">([^<]*)</span>',
                       page.split('id="relwords"')[1].split("</div>")[0])
    assert [t for _, t in spans] == data["tokens"], spans
    top = int(np.argmax(r["relevance_words"]))
    assert spans[top][0] == "%02x%02x%02x" % tuple(wine), spans[top]
    # the boxes: over the blank canvas, the most relevant box outlined in the darkest colour
    im = np.asarray(attnviz.png(f"{rel}/{stem}.relevance.png")).astype(int)
    pw, ph = map(int, re.search(r'<img alt="the image" src="[^"]*" width="(\d+)" height="(\d+)"', page).groups())
    cap = im.shape[0] - ph
    assert im.shape[1] == max(pw, 480) and cap > 0, im.shape
    x1, y1, x2, y2 = data["boxes"][int(np.argmax(r["relevance_boxes"]))]
    corner = im[cap + int(y1 + 0.5), int(x1 + 0.5)]
    assert (corner == wine).all(), (stem, corner)
    assert attnviz.check_picture(r, im[cap:, :pw], None) > 50000
    # without the relevance section and data, the page is the one of the record without relevance
    cut = re.sub(r'<h2>Relevance: .*?<img id="relboxes"[^>]*>\n', "", page, flags=re.S)
    cut = re.sub(r',"relevance":\{[^}]*\}', "", cut)
    assert cut == open(f"{plain}/{stem}.html").read(), stem
    assert "relevance" not in open(f"{plain}/{stem}.html").read().lower()
PY
}

@test "stops at a record with relevance_words but not relevance_boxes" {
	encoded
	"$BIN/lx-explain" -m "$FIX/tiny" < "$T/enc.mp" | "$PY" -c '
import lxtest
r = lxtest.read_records()
del r[1]["relevance_boxes"]
lxtest.write_records(r)' > "$T/bad.mp"
	run $SEP viz "$T/bad.mp" -o "$T/out"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-attnviz: stdin: record 2 (id 132417001): no field relevance_boxes beside relevance_words: make the records with lx-explain" ]
	[ "$(grep -c '<tr><td><a href=' "$T/out/index.html")" -eq 1 ]
}

@test "an empty stream gives an empty index" {
	run $SEP viz /dev/null -o "$T/out"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "$(ls "$T/out")" = "index.html" ]
	grep -q '<h1>Attention maps of 0 records</h1>' "$T/out/index.html"
}

@test "prints its usage with -h, and exits 2 on a bad command line" {
	run $SEP "$VIZ" -h
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "usage: lx-attnviz -o DIR "* ]]
	[ "$stderr" = "" ]
	run $SEP "$VIZ"
	[ "$status" -eq 2 ]
	[ "$output" = "" ]
	[ "${stderr_lines[0]}" = "lx-attnviz: -o DIR is required" ]
	[ "${stderr_lines[1]}" = "usage: lx-attnviz -o DIR [options]" ]
	run $SEP "$VIZ" -o "$T/out" --cell 0
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = "lx-attnviz: --cell takes a whole number from 1 to 64, not '0'" ]
	run $SEP "$VIZ" -o "$T/out" extra
	[ "$status" -eq 2 ]
}

@test "exits 3 on a font it cannot read or a missing --images folder, and 4 on a folder it cannot make" {
	run $SEP "$VIZ" -o "$T/out" --font "$T/none.ttf" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-attnviz: $T/none.ttf: not a font file FreeType can read" ]
	run $SEP "$VIZ" -o "$T/out" --images "$T/none" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-attnviz: --images $T/none: No such file or directory" ]
	run $SEP "$VIZ" -o /dev/null/out < /dev/null
	[ "$status" -eq 4 ]
	[ "$stderr" = "lx-attnviz: /dev/null/out: cannot make the folder: Not a directory" ]
}

# Records with names of the given ids in $T/ids.mp: question_ids from the arguments, in order, over the
# encoded records (one more id than records takes the first record again).
named() {
	$PY -c '
import sys
from lxtest import read_records, write_records
r = read_records()
write_records([dict(r[i % len(r)], question_id=q) for i, q in enumerate(sys.argv[1:])])' "$@" < "$T/enc.mp" > "$T/ids.mp"
}

@test "gives every record its own name: a suffix until the name is free, index reserved" {
	encoded
	named a-2 a a index INDEX
	"$VIZ" -o "$T/out" < "$T/ids.mp"
	for n in a-2 a a-3 index-2 INDEX-2; do
		[ -s "$T/out/$n.html" ] && [ -s "$T/out/$n.boxes.png" ]
	done
	[ "$(ls "$T/out" | grep -c '\.html$')" -eq 6 ]
	grep -q '<h1>Attention maps of 5 records</h1>' "$T/out/index.html"
	[ "$(grep -o '<a href="[^"]*.html">' "$T/out/index.html" | sort -u | wc -l)" -eq 5 ]
	# each page is its record's: the sentence of the record it names
	grep -q '"id":"a-3"' "$T/out/a-3.html"
	grep -q '"record":3' "$T/out/a-3.html"
}

@test "shortens a long id with a hash of the whole id, so that two long ids sharing a start stay apart" {
	encoded
	long=$(printf 'q%.0s' $(seq 400))
	named "${long}1" "${long}2" "$(printf 'é%.0s' $(seq 60))"
	run $SEP "$VIZ" -o "$T/out" < "$T/ids.mp"
	[ "$status" -eq 0 ]
	[ "$stderr" = "" ]
	[ "$(ls "$T/out" | grep -c '\.html$')" -eq 4 ]
	for f in "$T"/out/*.html; do
		n=$(basename "$f" .html)
		[ "$n" = index ] || [ "${#n}" -le 100 ]
	done
	[ "$(ls "$T/out" | grep -c "^$(printf 'q%.0s' $(seq 80))-[0-9a-f]\{16\}\.html$")" -eq 2 ]
}

@test "refuses an id with a NUL byte, after the files of the records before it" {
	encoded
	$PY -c '
from lxtest import read_records, write_records
import sys
r = read_records()
r[2]["question_id"] = "a\0b"
write_records(r)' < "$T/enc.mp" > "$T/nul.mp"
	run $SEP viz "$T/nul.mp" -o "$T/out"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-attnviz: stdin: record 3 (id a): field question_id: holds a NUL byte, which no file name can" ]
	only_first_two
}

@test "shows answers without names by their index, and by the model's answer names with -m" {
	encoded
	"$BIN/lx-head" -m "$FIX/tiny" < "$T/enc.mp" > "$T/head.mp"
	run $SEP viz "$T/head.mp" -o "$T/out"
	[ "$status" -eq 0 ]
	best=$($PY -c '
from lxtest import read_records
r = read_records()[0]["answers"][0]
print("#%d %.3f" % (r["index"], r["score"]))' < "$T/head.mp")
	grep -q "answer: <b>${best% *}</b> <span>${best#* }</span>" "$T/out/132417000.html"
	grep -q "<td>${best% *} (${best#* })</td>" "$T/out/index.html"
	mkdir "$T/model"
	ln -s "$FIX"/tiny/* "$T/model/"
	$PY -c 'import json; json.dump(["answer %d" % i for i in range(12)], open("'"$T/model/answers.json"'", "w"))'
	"$VIZ" -o "$T/named" -m "$T/model" < "$T/head.mp"
	grep -q "answer: <b>answer ${best:1:-6}</b> <span>${best#* }</span>" "$T/named/132417000.html"
}

@test "names the boxes by obj_ids with --objects, or with the objects_vocab.txt beside the model" {
	encoded
	$PY -c '
from lxtest import read_records, write_records
write_records([{k: v for k, v in r.items() if k != "objects"} for r in read_records()])' < "$T/enc.mp" > "$T/ids.mp"
	"$VIZ" -o "$T/out" --objects "$TOP/labels/vg_objects_vocab.txt" < "$T/ids.mp"
	mkdir "$T/model"
	cp "$TOP/labels/vg_objects_vocab.txt" "$T/model/objects_vocab.txt"
	"$VIZ" -o "$T/out2" -m "$T/model" < "$T/ids.mp"
	"$VIZ" -o "$T/plain" < "$T/ids.mp"
	$PY - "$T/ids.mp" "$TOP/labels/vg_objects_vocab.txt" "$T/out" "$T/out2" "$T/plain" <<'PY'
import sys, attnviz, lxtest
recs = lxtest.read_records(open(sys.argv[1], "rb"))
names = [l.split(",")[0] for l in open(sys.argv[2]).read().splitlines()]
for r in recs:
    stem = str(r["question_id"])
    want = [f"#{i} {names[k]}" for i, k in enumerate(r["obj_ids"])]
    for d in sys.argv[3:5]:
        assert attnviz.page_data(f"{d}/{stem}.html")["boxLabels"] == want, (d, stem)
    assert attnviz.page_data(f"{sys.argv[5]}/{stem}.html")["boxLabels"] == [f"#{i}" for i in range(len(want))]
PY
	# the scenes' own object names are those of their obj_ids
	grep -q '"boxLabels":\["#0 sky","#1 tree"' "$T/out/132417000.html"
}

@test "refuses obj_ids beyond the object names" {
	encoded
	head -n 100 "$TOP/labels/vg_objects_vocab.txt" > "$T/few.txt"
	run $SEP viz "$T/enc.mp" -o "$T/out" --objects "$T/few.txt"
	[ "$status" -eq 0 ] # the records' own object names come first
	$PY -c '
from lxtest import read_records, write_records
write_records([{k: v for k, v in r.items() if k != "objects"} for r in read_records()])' < "$T/enc.mp" > "$T/ids.mp"
	run $SEP viz "$T/ids.mp" -o "$T/out2" --objects "$T/few.txt"
	[ "$status" -eq 1 ]
	[[ "$stderr" == "lx-attnviz: stdin: record 1 (id 132417000): field obj_ids: item 1 is 291, but $T/few.txt has 100 object names" ]]
}

@test "outlines the boxes and leaves the picture as it is inside them" {
	encoded
	"$VIZ" -o "$T/out" --top 0 < "$T/enc.mp"
	$PY - "$T/out" "$T/enc.mp" <<'PY'
import sys, numpy as np, attnviz, lxtest
for r in lxtest.read_records(open(sys.argv[2], "rb")):
    stem = str(r["question_id"])
    im = np.asarray(attnviz.png(f"{sys.argv[1]}/{stem}.boxes.png")).astype(int)
    pw, ph = attnviz.picture_size(r, None)
    area = im[im.shape[0] - ph:, :pw]
    b = r["boxes"] * np.array([pw / r["img_w"], ph / r["img_h"]] * 2)
    edge = np.zeros((ph, pw), bool)      # within 3 pixels of a box's outline
    inside = np.zeros((ph, pw), bool)
    for x1, y1, x2, y2 in np.rint(b).astype(int):
        inside[max(y1, 0):y2, max(x1, 0):x2] = True
        band = np.zeros((ph, pw), bool)
        band[max(y1 - 1, 0):y2 + 1, max(x1 - 1, 0):x2 + 1] = True
        band[max(y1 + 4, 0):max(y2 - 4, 0), max(x1 + 4, 0):max(x2 - 4, 0)] = False
        edge |= band
    bare = inside & ~edge
    assert bare.sum() > 1000, bare.sum()
    assert (area[bare] == 233).all(), (stem, (area[bare] != 233).any(1).sum())   # the canvas's grey
    assert not (area[edge] == 233).all(), stem                                    # and outlines drawn
PY
}

@test "draws the colour scale from 0 to each map's largest, to 1, or to each row's largest" {
	encoded
	for s in map fixed row; do
		"$VIZ" -o "$T/$s" --scale $s --png --kinds cross --cell 4 < "$T/enc.mp"
	done
	$PY - "$T" "$T/enc.mp" <<'PY'
import sys, numpy as np, attnviz, lxtest
wine = np.array([92, 6, 42])
for r in lxtest.read_records(open(sys.argv[2], "rb")):
    stem = str(r["question_id"])
    a = r["cross_encoder_attentions"]                 # [x, heads, T, N]
    layers, heads, T, N = a.shape
    dark = {s: int((np.asarray(attnviz.png(f"{sys.argv[1]}/{s}/{stem}.cross.png")).reshape(-1, 3) == wine).all(1).sum())
            for s in ("map", "fixed", "row")}
    # the bar's top row (16 pixels), and the cells (16 pixels each) in the darkest colour: map: the largest
    # value of the picture; fixed: none (no value is 1); row: the largest of every row of every panel
    assert dark["fixed"] == 16, dark
    assert 32 <= dark["map"] < 16 * layers * T, dark
    assert dark["row"] >= 16 * layers * (heads + 1) * T, dark
    for s in ("map", "fixed", "row"):
        assert attnviz.page_data(f"{sys.argv[1]}/{s}/{stem}.html")["scale"] == s
PY
	run $SEP "$VIZ" -o "$T/x" --scale log
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = "lx-attnviz: --scale takes map, fixed or row, not 'log'" ]
}

@test "writes the kinds asked for, PNGs only with --png and no .npy with --no-npy" {
	encoded
	"$VIZ" -o "$T/def" < "$T/enc.mp"
	[ "$(ls "$T/def" | sed 's/^[0-9]*\.//' | sort -u | tr '\n' ' ')" = "boxes.png cross-vision.npy cross.npy html index.html rollout-lang.npy rollout-vision.npy " ]
	"$VIZ" -o "$T/two" --kinds lang,vision --png --no-npy < "$T/enc.mp"
	[ "$(ls "$T/two" | sed 's/^[0-9]*\.//' | sort -u | tr '\n' ' ')" = "boxes.png html index.html lang.png vision.png " ]
	[ "$($PY -c 'import attnviz, sys; print(" ".join(k["key"] for k in attnviz.page_data(sys.argv[1])["kinds"]))' "$T/two/132417000.html")" = "lang vision" ]
	! grep -q '\.npy' "$T/two/132417000.html"
	run $SEP "$VIZ" -o "$T/x" --kinds cross,nope
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = "lx-attnviz: --kinds: 'nope' is not a kind (lang, vision, cross, cross-vision, cross-lang-self, cross-vision-self, rollout-lang, rollout-vision or all)" ]
}

# Every file of $1 with its checksum, one a line (hidden entries too).
tree_sums() {
	(cd "$1" && find . -type f | sort | xargs -r sha256sum)
}

@test "killed at a write, leaves no file half-written and the earlier output as it was; the next run cleans up" {
	encoded
	"$VIZ" -o "$T/out" --kinds all < "$T/enc.mp"
	tree_sums "$T/out" > "$T/before"
	# the writes of a whole run, then a run killed at the middle one
	strace -f -qq -e trace=write -o "$T/writes" "$VIZ" -o "$T/ref" --kinds all < "$T/enc.mp"
	n=$(grep -c 'write(' "$T/writes")
	[ "$n" -gt 20 ]
	run strace -f -qq -o /dev/null -e trace=write -e inject=write:signal=KILL:when=$((n / 2)) "$VIZ" -o "$T/out" --kinds all < "$T/enc.mp"
	[ "$status" -eq 137 ]
	tree_sums "$T/out" > "$T/after"
	cmp "$T/before" "$T/after"
	ls -a "$T" | grep -q '^\.out\.tmp-'        # what the killed run left, hidden beside DIR
	# the same kill on a first run leaves DIR empty: no page, picture or index under its final name
	run strace -f -qq -o /dev/null -e trace=write -e inject=write:signal=KILL:when=$((n / 2)) "$VIZ" -o "$T/new" --kinds all < "$T/enc.mp"
	[ "$status" -eq 137 ]
	[ -z "$(ls -A "$T/new")" ]
	# the next run removes what the killed ones left and replaces DIR whole
	"$VIZ" -o "$T/out" --kinds all < "$T/enc.mp"
	! ls -a "$T" | grep -q '^\.out\.'
	tree_sums "$T/out" | cut -c66- > "$T/names"
	tree_sums "$T/ref" | cut -c66- | cmp - "$T/names"
}

@test "a rerun that fails keeps the earlier output whole; one that succeeds replaces it whole" {
	encoded
	"$VIZ" -o "$T/out" < "$T/enc.mp"
	tree_sums "$T/out" > "$T/before"
	$AV edit no-attentions < "$T/enc.mp" > "$T/bad.mp"
	run $SEP viz "$T/bad.mp" -o "$T/out" --kinds all
	[ "$status" -eq 1 ]
	[ "${stderr_lines[0]}" = "lx-attnviz: $T/out: kept as it was: this run did not succeed, and its 2 records are not written" ]
	[ "${stderr_lines[1]}" = "lx-attnviz: stdin: record 3 (id 573195000): no field language_attentions: make the records with lx-encode --attentions" ]
	tree_sums "$T/out" | cmp - "$T/before"
	# a run of two records replaces the six: nothing of the earlier run is left
	$PY -c 'from lxtest import read_records, write_records; write_records(read_records()[:2])' < "$T/enc.mp" > "$T/two.mp"
	"$VIZ" -o "$T/out" < "$T/two.mp"
	[ "$(ls "$T/out" | grep -c '\.html$')" -eq 3 ]
	! ls -a "$T" | grep -q '^\.out\.'
}

@test "one writer at a time: a second run on the same folder is refused with status 2, naming the first" {
	encoded
	mkfifo "$T/fifo"
	"$VIZ" -o "$T/out" < "$T/fifo" &
	pid=$!
	exec 8> "$T/fifo"
	for i in $(seq 100); do [ -e "$T/.out.lock" ] && break; sleep 0.1; done
	run $SEP viz "$T/enc.mp" -o "$T/out"
	exec 8>&-
	wait $pid
	[ "$status" -eq 2 ]
	[ "$stderr" = "lx-attnviz: $T/out: being written by another process (pid $pid)" ]
	[ "$(ls "$T/out")" = "index.html" ]
}

@test "refuses a folder that holds other files, which replacing it would lose" {
	mkdir "$T/mine"
	echo keep > "$T/mine/notes.txt"
	run $SEP viz /dev/null -o "$T/mine"
	[ "$status" -eq 2 ]
	[ "$stderr" = "lx-attnviz: $T/mine: holds files that are not lx-attnviz's (no index.html of it); give a new or empty folder, which each run replaces whole" ]
	[ "$(cat "$T/mine/notes.txt")" = keep ]
	run $SEP viz /dev/null -o "$T/mine/"
	[ "$status" -eq 2 ]
	run $SEP viz /dev/null -o .
	[ "$status" -eq 2 ]
	[ "${stderr_lines[0]}" = "lx-attnviz: -o .: name the folder itself (each run replaces it whole), not . or .. or /" ]
}
