#!/usr/bin/env bats
# From photos to answers and attention pages: lx-tokenize | lx-detect --join | lx-encode | lx-head | lx-attnviz,
# with tests/fixtures/frcnn-tiny's detector (128 features) and a small LXMERT of visual_feat_dim 128 made by
# lx-convert from a random checkpoint (tests/py/mklxmert128.py).

load helpers

setup() {
	M="$FIX/frcnn-tiny"
	IMG="$M/images"
	W="$BATS_TEST_TMPDIR"
}

@test "photos -> lx-detect -> lx-encode -> lx-head -> lx-attnviz: the detector's boxes and names on the pages" {
	"$PY" "$TOP/tests/py/mklxmert128.py" "$W/hub"
	"$BIN/lx-convert" -q "$W/hub" "$W/lx128"
	printf '%s\n' yes no red blue bus car two three road street people dog > "$W/lx128/answers.txt"
	head -20 "$FIX/vg_objects_vocab.txt" > "$W/objects.txt"
	printf '%s\n' '{"question_id": 1, "img_id": "000456", "sent": "what is on the road?"}' \
		'{"question_id": 2, "img_id": "001763", "sent": "how many people are there?"}' \
		'{"question_id": 3, "img_id": "000456", "sent": "what colour is the bus?"}' > "$W/q.jsonl"
	"$BIN/lx-tokenize" -m "$W/lx128" --jsonl < "$W/q.jsonl" > "$W/tok.mp"
	"$BIN/lx-detect" -m "$M" --join "$IMG" --objects "$W/objects.txt" < "$W/tok.mp" > "$W/joined.mp"
	"$BIN/lx-encode" -m "$W/lx128" --attentions < "$W/joined.mp" > "$W/enc.mp"
	"$BIN/lx-head" -m "$W/lx128" --heads qa < "$W/enc.mp" > "$W/ans.mp"
	"$BIN/lx-attnviz" -o "$W/pages" --images "$IMG" < "$W/ans.mp"
	"$BIN/lx-detect" -m "$M" "$IMG/000456.jpg" "$IMG/001763.png" > "$W/files.mp"
	run "$PY" - "$W" <<'PYEOF'
import json, re, sys
import msgpack, msgpack_numpy
w = sys.argv[1]
def recs(name):
    return list(msgpack.Unpacker(open(f"{w}/{name}", "rb"), object_hook=msgpack_numpy.decode, raw=False))
names = [l.rstrip("\n").split(",")[0] for l in open(f"{w}/objects.txt")]
files = {r["img_id"]: r for r in recs("files.mp")}
joined, ans = recs("joined.mp"), recs("ans.mp")
assert len(joined) == len(ans) == 3, (len(joined), len(ans))
for j, a in zip(joined, ans):
    f = files[j["img_id"]]
    # --join gives file mode's fields, byte for byte, and the names of obj_ids after them
    for k, v in f.items():
        if k != "img_id":
            assert (j[k] == v).all() if hasattr(v, "all") else j[k] == v, k
    assert j["objects"] == [names[i] for i in f["obj_ids"]], j["objects"]
    n = len(f["obj_ids"])
    assert a["vision_output"].shape == (n, 32), a["vision_output"].shape
    assert a["cross_encoder_attentions"].shape[-1] == n, a["cross_encoder_attentions"].shape
    assert a["question_id"] == j["question_id"] and len(a["answers"]) == 5, a["answers"]
    assert a["answers"][0]["answer"] in open(f"{w}/lx128/answers.txt").read().split(), a["answers"]
    # the page: one label per detection with the detector's name, the boxes scaled to the picture
    page = open(f"{w}/pages/{a['question_id']}.html").read()
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1))
    assert data["boxLabels"] == [f"#{i} {names[c]}" for i, c in enumerate(f["obj_ids"])], data["boxLabels"]
    s = data["picture"]["w"] / f["img_w"]
    assert abs(data["picture"]["h"] / f["img_h"] - s) < 0.01, (data["picture"], f["img_w"], f["img_h"])
    for got, box in zip(data["boxes"], f["boxes"]):
        assert all(abs(g - b * s) <= 1.0 for g, b in zip(got, box)), (got, box * s)
print("ok")
PYEOF
	echo "$output"
	[ "$output" = "ok" ]
	[ -s "$W/pages/index.html" ]
}
