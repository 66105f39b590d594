#!/usr/bin/env bats
# lx-head: LXMERT's heads over lx-encode's records. Golden values come from the fixtures (HF's outputs), from
# numpy on the golden encoder outputs, or from hand calculation; floats are compared within 1e-4 unless said.
load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	TINY="$FIX/tiny"
	MICRO="$FIX/micro"
	LAB="$FIX/labels"
	CASES="$TOP/tests/py/head_cases.py"
}

# Records holding tiny's golden encoder outputs for the given cases (question_id 1000 + case).
outputs() { $PY "$CASES" outputs "$TINY/golden.safetensors" "$@"; }

# A copy of tiny whose answer head has $2 answers (seeded random weights).
qa_model() { $PY "$CASES" model "$TINY" "$1" qa "$2"; }

# Twelve answer names for tiny's answer head, one a line.
twelve() { for i in 0 1 2 3 4 5 6 7 8 9 10 11; do echo "a$i"; done > "$1"; }

# ---- golden cases ----

@test "matches HF's head outputs on every tiny golden case through lx-encode" {
	$PY "$TOP/tests/py/golden.py" inputs "$TINY/golden.safetensors" | "$BIN/lx-encode" -m "$TINY" > "$T/enc"
	"$BIN/lx-head" -m "$TINY" --all-logits < "$T/enc" > "$T/out"
	$PY "$CASES" compare "$TINY/golden.safetensors" < "$T/out"
}

@test "matches HF's head outputs on every micro golden case through lx-encode" {
	$PY "$TOP/tests/py/golden.py" inputs "$MICRO/golden.safetensors" | "$BIN/lx-encode" -m "$MICRO" > "$T/enc"
	"$BIN/lx-head" -m "$MICRO" --all-logits < "$T/enc" > "$T/out"
	$PY "$CASES" compare "$MICRO/golden.safetensors" < "$T/out"
}

@test "case 6's total loss matches HF's within 1e-4 relative on tiny and on micro" {
	for m in tiny micro; do
		$PY "$CASES" labelled "$FIX/$m/golden.safetensors" | "$BIN/lx-encode" -m "$FIX/$m" > "$T/enc"
		"$BIN/lx-head" -m "$FIX/$m" < "$T/enc" > "$T/out" 2> "$T/err"
		$PY "$CASES" loss "$FIX/$m/golden.safetensors" < "$T/out"
		grep -q '^lx-head: loss over 1 labelled records: sum [0-9.]*, mean [0-9.]* (mean masked_lm_loss ' "$T/err"
	done
}

@test "writes each loss part, and the parts add up to loss" {
	$PY "$CASES" labelled "$TINY/golden.safetensors" | "$BIN/lx-encode" -m "$TINY" | "$BIN/lx-head" -m "$TINY" \
		> "$T/out" 2> /dev/null
	$PY - "$T/out" <<'EOF'
import sys
from lxtest import read_records
r = read_records(open(sys.argv[1], "rb"))[0]
parts = ["masked_lm_loss", "matched_loss", "obj_loss", "attr_loss", "feat_loss", "answer_loss"]
assert all(isinstance(r[p], float) and r[p] > 0 for p in parts), r
assert abs(sum(r[p] for p in parts) - r["loss"]) < 1e-9
EOF
}

@test "vqa_loss, the authors' VQA loss of a soft-score label, matches torch on micro within 1e-4 relative" {
	cp -r "$MICRO" "$T/m"
	printf 'n0\nn1\nn2\nn3\nn4\n' > "$T/m/answers.txt"
	$PY "$TOP/tests/py/golden.py" inputs "$MICRO/golden.safetensors" 0 | $PY -c '
import sys
from lxtest import read_records, read_safetensors, write_records
target = read_safetensors(sys.argv[1])["vqa.target"]
recs = read_records()
recs[0]["label"] = {"n%d" % i: float(v) for i, v in enumerate(target) if v}
recs[0]["label"]["not an answer"] = 1
write_records(recs)' "$MICRO/golden_grads.safetensors" | "$BIN/lx-encode" -m "$T/m" > "$T/enc"
	"$BIN/lx-head" -m "$T/m" --heads qa < "$T/enc" > "$T/out" 2> "$T/err"
	$PY -c '
import sys
from lxtest import read_records, read_safetensors
want = float(read_safetensors(sys.argv[1])["vqa.loss"][0])
got = read_records(open(sys.argv[2], "rb"))[0]["vqa_loss"]
assert abs(got - want) <= 1e-4 * want, (got, want)
assert "loss" not in read_records(open(sys.argv[2], "rb"))[0]' "$MICRO/golden_grads.safetensors" "$T/out"
	grep -qx 'lx-head: vqa_loss over 1 questions: mean [0-9.]*' "$T/err"
}

@test "without --all-logits, prediction_logits holds the [MASK] rows and mask_positions says where" {
	outputs 1 0 | "$BIN/lx-head" -m "$TINY" --heads mlm > "$T/out"
	$PY - "$T/out" "$TINY/golden.safetensors" <<'EOF'
import sys, numpy as np
from lxtest import read_records, golden_cases
g = golden_cases(sys.argv[2])
a, b = read_records(open(sys.argv[1], "rb"))
ids = g[1]["input_ids"]
assert list(a["mask_positions"]) == [int(i) for i in np.flatnonzero(ids == 103)] == [4]
assert a["mask_positions"].dtype == np.int32
assert a["prediction_logits"].shape == (1, 30522)
assert np.max(np.abs(a["prediction_logits"][0] - g[1]["prediction_logits"][4])) < 1e-4
assert b["prediction_logits"].shape == (0, 30522) and b["mask_positions"].shape == (0,)
assert b["masked_words"] == []
assert "question_answering_score" not in a and "obj_head_obj" not in a
EOF
}

# ---- readable results ----

@test "--top K lists the K best answers with softmax probabilities for a pretraining model" {
	outputs 0 2 | "$BIN/lx-head" -m "$TINY" --heads qa --top 3 > "$T/out"
	$PY - "$T/out" "$TINY/golden.safetensors" <<'EOF'
import sys, numpy as np
from lxtest import read_records, golden_cases
g = golden_cases(sys.argv[2])
recs = read_records(open(sys.argv[1], "rb"))
assert len(recs) == 2
for r in recs:
    x = g[r["case"]]["question_answering_score"].astype(np.float64)
    p = np.exp(x - x.max()); p /= p.sum()
    order = [int(i) for i in np.argsort(-x, kind="stable")[:3]]
    assert [a["index"] for a in r["answers"]] == order, r["answers"]
    assert np.allclose([a["score"] for a in r["answers"]], p[order], atol=1e-5)
    assert all(sorted(a) == ["index", "score"] for a in r["answers"])
EOF
}

@test "lists five answers by default, and --answer-prob sigmoid gives each logit's sigmoid" {
	outputs 0 | "$BIN/lx-head" -m "$TINY" --heads qa --answer-prob sigmoid > "$T/out"
	$PY - "$T/out" "$TINY/golden.safetensors" <<'EOF'
import sys, numpy as np
from lxtest import read_records, golden_cases
x = golden_cases(sys.argv[2])[0]["question_answering_score"].astype(np.float64)
r = read_records(open(sys.argv[1], "rb"))[0]
order = [int(i) for i in np.argsort(-x, kind="stable")[:5]]
assert [a["index"] for a in r["answers"]] == order
assert np.allclose([a["score"] for a in r["answers"]], 1 / (1 + np.exp(-x[order])), atol=1e-5)
EOF
}

@test "--top also sets the number of words listed for each [MASK], named from vocab.txt" {
	outputs 1 | "$BIN/lx-head" -m "$TINY" --heads mlm --top 4 > "$T/out"
	$PY - "$T/out" "$TINY/golden.safetensors" "$TINY/vocab.txt" <<'EOF'
import sys, numpy as np
from lxtest import read_records, golden_cases
x = golden_cases(sys.argv[2])[1]["prediction_logits"][4].astype(np.float64)
vocab = open(sys.argv[3], encoding="utf-8").read().split("\n")
p = np.exp(x - x.max()); p /= p.sum()
order = [int(i) for i in np.argsort(-x, kind="stable")[:4]]
(words,) = read_records(open(sys.argv[1], "rb"))[0]["masked_words"]
assert [w["index"] for w in words] == order
assert [w["word"] for w in words] == [vocab[i] for i in order]
assert np.allclose([w["score"] for w in words], p[order], atol=1e-5)
EOF
}

@test "names the best object and attribute of each box with --objects and --attributes" {
	outputs 0 1 | "$BIN/lx-head" -m "$TINY" --heads obj --objects "$LAB/vg_objects_vocab.txt" \
		--attributes "$LAB/vg_attributes_vocab.txt" > "$T/out"
	$PY - "$T/out" "$TINY/golden.safetensors" "$LAB" <<'EOF'
import sys, numpy as np
from lxtest import read_records, golden_cases
g = golden_cases(sys.argv[2])
first = lambda f: [l.split(",")[0] for l in open(sys.argv[3] + "/" + f).read().split("\n")]
objs, attrs = first("vg_objects_vocab.txt"), first("vg_attributes_vocab.txt")
assert len(objs) == 1600 and len(attrs) == 400
for r in read_records(open(sys.argv[1], "rb")):
    c = g[r["case"]]
    assert r["objects"] == [objs[i] for i in c["obj_head_obj"].argmax(1)], r["objects"]
    assert r["attributes"] == [attrs[i] for i in c["obj_head_attr"].argmax(1)]
    assert len(r["objects"]) == c["vision_output"].shape[0]
EOF
}

@test "--labels reads a label2ans JSON list, lxmert_all_ans.json objects and one answer a line" {
	qa_model "$T/m3129" 3129
	qa_model "$T/m9500" 9500
	qa_model "$T/m1842" 1842
	$PY "$CASES" text-labels "$LAB/gqa_trainval_label2ans.json" "$T/gqa.txt"
	outputs 0 > "$T/in"
	"$BIN/lx-head" -m "$T/m3129" --heads qa --labels "$LAB/vqa_trainval_label2ans.json" < "$T/in" > "$T/o3129"
	"$BIN/lx-head" -m "$T/m9500" --heads qa --labels "$LAB/lxmert_all_ans.json" < "$T/in" > "$T/o9500"
	"$BIN/lx-head" -m "$T/m1842" --heads qa --labels "$T/gqa.txt" < "$T/in" > "$T/o1842"
	for n in 3129 9500 1842; do
		$PY "$CASES" answer-head "$T/m$n" "$TINY/golden.safetensors" 0 > "$T/logits$n"
	done
	$PY - "$T" "$LAB" <<'EOF'
import json, sys, numpy as np
from lxtest import read_records
t, lab = sys.argv[1:]
names = {3129: json.load(open(lab + "/vqa_trainval_label2ans.json")),
         9500: [a["ans"] for a in json.load(open(lab + "/lxmert_all_ans.json"))],
         1842: open(t + "/gqa.txt").read().split("\n")[:-1]}
for n, ans in names.items():
    assert len(ans) == n
    x = np.loadtxt("%s/logits%d" % (t, n))
    order = [int(i) for i in np.argsort(-x, kind="stable")[:5]]
    r = read_records(open("%s/o%d" % (t, n), "rb"))[0]
    assert np.max(np.abs(r["question_answering_score"] - x)) < 1e-4
    assert [a["index"] for a in r["answers"]] == order
    assert [a["answer"] for a in r["answers"]] == [ans[i] for i in order], (n, r["answers"])
EOF
}

@test "reads answer names from answers.txt in the model directory" {
	cp -r "$TINY" "$T/m"
	twelve "$T/m/answers.txt"
	outputs 0 | "$BIN/lx-head" -m "$T/m" --heads qa --top 12 > "$T/out"
	$PY - "$T/out" <<'EOF'
import sys
from lxtest import read_records
r = read_records(open(sys.argv[1], "rb"))[0]
assert [a["answer"] for a in r["answers"]] == ["a%d" % a["index"] for a in r["answers"]]
assert sorted(a["index"] for a in r["answers"]) == list(range(12))
EOF
}

@test "adds match_prob, the softmax of cross_relationship_score at index 1" {
	outputs 0 3 | "$BIN/lx-head" -m "$TINY" --heads match > "$T/out"
	$PY - "$T/out" "$TINY/golden.safetensors" <<'EOF'
import sys, numpy as np
from lxtest import read_records, golden_cases
g = golden_cases(sys.argv[2])
for r in read_records(open(sys.argv[1], "rb")):
    x = g[r["case"]]["cross_relationship_score"].astype(np.float64)
    assert abs(r["match_prob"] - np.exp(x[1]) / np.exp(x).sum()) < 1e-6
    assert np.max(np.abs(r["cross_relationship_score"] - x)) < 1e-4
EOF
}

# ---- output formats ----

@test "--json writes one JSON object a line with every non-tensor field and no tensors" {
	outputs 0 1 | $PY -c '
import sys
from lxtest import read_records, write_records
recs = read_records()
recs[0].update({"img_id": "COCO_val2014_000000000042", "label": {"net": 1, "ball": 0.3}, "flag": True,
                "nothing": None, "nested": [1, -2, [3.5, "x"]], "quote": "a \"b\"\n\u00e9"})
write_records(recs)' > "$T/in"
	"$BIN/lx-head" -m "$TINY" --json < "$T/in" > "$T/out"
	$PY - "$T/out" <<'EOF'
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
assert lines[-1] == "" and len(lines) == 3
a, b = (json.loads(l) for l in lines[:2])
for k in ("pooled_output", "language_output", "vision_output", "input_ids", "visual_feats",
          "question_answering_score", "prediction_logits", "obj_head_obj", "mask_positions"):
    assert k not in a, k
assert a["question_id"] == 1000 and a["sent"] == "case 0" and a["case"] == 0
assert a["img_id"] == "COCO_val2014_000000000042" and a["label"] == {"net": 1, "ball": 0.3}
assert a["flag"] is True and a["nothing"] is None and a["nested"] == [1, -2, [3.5, "x"]]
assert a["quote"] == "a \"b\"\n\u00e9"
assert len(a["answers"]) == 5 and 0 <= a["match_prob"] <= 1
assert "objects" not in a  # no object names given
assert len(b["masked_words"]) == 1 and len(b["masked_words"][0]) == 5
assert isinstance(a["match_prob"], float)
EOF
}

@test "--json-tensors writes tensors as nested lists" {
	outputs 0 | "$BIN/lx-head" -m "$TINY" --heads qa,obj --json-tensors > "$T/out"
	$PY - "$T/out" "$TINY/golden.safetensors" <<'EOF'
import json, sys, numpy as np
from lxtest import golden_cases
g = golden_cases(sys.argv[2])[0]
r = json.loads(open(sys.argv[1]).read())
assert r["input_ids"] == [int(i) for i in g["input_ids"]]
assert np.max(np.abs(np.array(r["question_answering_score"]) - g["question_answering_score"])) < 1e-4
assert np.array(r["obj_head_obj"]).shape == (10, 1600)
assert np.max(np.abs(np.array(r["obj_head_attr"]) - g["obj_head_attr"])) < 1e-4
EOF
}

@test "--submit vqa writes the JSON list of question_id and answer the VQA server expects" {
	qa_model "$T/m" 3129
	outputs 0 2 3 | "$BIN/lx-head" -m "$T/m" --labels "$LAB/vqa_trainval_label2ans.json" --submit vqa > "$T/sub"
	for c in 0 2 3; do $PY "$CASES" answer-head "$T/m" "$TINY/golden.safetensors" $c > "$T/l$c"; done
	$PY - "$T" "$LAB/vqa_trainval_label2ans.json" <<'EOF'
import json, sys, numpy as np
t, lab = sys.argv[1:]
ans = json.load(open(lab))
sub = json.load(open(t + "/sub"))
want = [{"question_id": 1000 + c, "answer": ans[int(np.argmax(np.loadtxt("%s/l%d" % (t, c))))]} for c in (0, 2, 3)]
assert sub == want, (sub, want)
assert all(list(s) == ["question_id", "answer"] for s in sub)
EOF
}

@test "--submit gqa writes questionId as a string and prediction" {
	qa_model "$T/m" 1842
	outputs 0 1 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
recs[0]["question_id"] = "07333408"
write_records(recs)' | "$BIN/lx-head" -m "$T/m" --labels "$LAB/gqa_trainval_label2ans.json" --submit gqa > "$T/sub"
	for c in 0 1; do $PY "$CASES" answer-head "$T/m" "$TINY/golden.safetensors" $c > "$T/l$c"; done
	$PY - "$T" "$LAB/gqa_trainval_label2ans.json" <<'EOF'
import json, sys, numpy as np
t, lab = sys.argv[1:]
ans = json.load(open(lab))
best = lambda c: ans[int(np.argmax(np.loadtxt("%s/l%d" % (t, c))))]
assert json.load(open(t + "/sub")) == [{"questionId": "07333408", "prediction": best(0)},
                                       {"questionId": "1001", "prediction": best(1)}]
EOF
}

@test "--submit nlvr2 writes identifier,True|False a pair, from the mean match probability of its images" {
	outputs 0 1 2 3 4 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
for r, i in zip(recs, ["dev-1-0-0", "dev-1-0-0", "dev-2-1-0", "dev-2-1-0", "dev-3-0-1"]):
    r["identifier"] = i
write_records(recs)' > "$T/in"
	"$BIN/lx-head" -m "$TINY" --submit nlvr2 < "$T/in" > "$T/sub"
	$PY - "$T/sub" "$TINY/golden.safetensors" <<'EOF'
import csv, sys, numpy as np
from lxtest import golden_cases
g = golden_cases(sys.argv[2])
def p(c):
    x = g[c]["cross_relationship_score"].astype(np.float64)
    return np.exp(x[1]) / np.exp(x).sum()
want = [["dev-1-0-0", (p(0) + p(1)) / 2], ["dev-2-1-0", (p(2) + p(3)) / 2], ["dev-3-0-1", p(4)]]
want = [[i, "True" if v >= 0.5 else "False"] for i, v in want]
assert list(csv.reader(open(sys.argv[1], newline=""))) == want
EOF
}

# ---- scores ----

@test "--score prints the mean of label[predicted answer] over the questions (hand-computed 0.325)" {
	cp -r "$TINY" "$T/m"
	twelve "$T/m/answers.txt"
	outputs 0 1 2 3 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
every = lambda s: {"a%d" % i: s for i in range(12)}
for r, label in zip(recs, [every(1.0), every(0.3), {}, {"not an answer": 1}]):
    r["label"] = label
write_records(recs)' > "$T/in"
	"$BIN/lx-head" -m "$T/m" --heads qa --score < "$T/in" > /dev/null 2> "$T/err"
	# (1.0 + 0.3 + 0 + 0) / 4 = 0.325
	[ "$(tail -n 1 "$T/err")" = "lx-head: score 0.325000 over 4 questions" ]
	"$BIN/lx-head" -m "$T/m" --heads qa --score-file "$T/score.json" < "$T/in" > /dev/null 2> /dev/null
	$PY -c 'import json, sys; assert json.loads(open(sys.argv[1]).read()) == {"score": 0.325, "questions": 4}' \
		"$T/score.json"
}

@test "--score counts the label of the predicted answer only" {
	cp -r "$TINY" "$T/m"
	twelve "$T/m/answers.txt"
	outputs 0 1 | $PY -c '
import sys, numpy as np
from lxtest import read_records, write_records, golden_cases
g = golden_cases(sys.argv[1])
recs = read_records()
for r, rank in zip(recs, [0, 1]):
    order = np.argsort(-g[r["case"]]["question_answering_score"], kind="stable")
    r["label"] = {"a%d" % order[rank]: 0.9}
write_records(recs)' "$TINY/golden.safetensors" > "$T/in"
	"$BIN/lx-head" -m "$T/m" --heads qa --score < "$T/in" > /dev/null 2> "$T/err"
	# the first question's prediction scores 0.9, the second's (its label names the runner-up) 0
	[ "$(tail -n 1 "$T/err")" = "lx-head: score 0.450000 over 2 questions" ]
}

@test "--score gives NLVR2 accuracy over pairs for records with a 0/1 label" {
	outputs 0 1 2 3 4 | $PY -c '
import sys, numpy as np
from lxtest import read_records, write_records, golden_cases
g = golden_cases(sys.argv[1])
def p(c):
    x = g[c]["cross_relationship_score"].astype(np.float64)
    return np.exp(x[1]) / np.exp(x).sum()
recs = read_records()
pairs = [("p1", [0, 1], True), ("p2", [2, 3], True), ("p3", [4], False)]  # right, right, wrong
for ident, cases, right in pairs:
    pred = int(np.mean([p(c) for c in cases]) >= 0.5)
    for c in cases:
        recs[c]["identifier"] = ident
        recs[c]["label"] = pred if right else 1 - pred
write_records(recs)' "$TINY/golden.safetensors" > "$T/in"
	"$BIN/lx-head" -m "$TINY" --heads match --score < "$T/in" > /dev/null 2> "$T/err"
	[ "$(cat "$T/err")" = "lx-head: NLVR2 accuracy 0.666667 over 3 pairs" ]
}

# ---- bad input ----

@test "stops at a record without pooled_output after writing the records before it" {
	outputs 0 1 2 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
del recs[1]["pooled_output"]
write_records(recs)' > "$T/in"
	run "$BIN/lx-head" -m "$TINY" < "$T/in"
	[ "$status" -eq 1 ]
	"$BIN/lx-head" -m "$TINY" < "$T/in" > "$T/out" 2> "$T/err" || true
	[ "$(cat "$T/err")" = "lx-head: stdin: record 2 (id 1001): field pooled_output is missing (the qa and match heads need lx-encode's pooled_output)" ]
	$PY -c 'import sys; from lxtest import read_records; r = read_records(open(sys.argv[1], "rb")); assert [x["case"] for x in r] == [0] and "answers" in r[0]' "$T/out"
}

@test "names language_output or input_ids when the mlm head lacks one" {
	outputs 0 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
del recs[0]["language_output"]
write_records(recs)' > "$T/in"
	run "$BIN/lx-head" -m "$TINY" --heads mlm < "$T/in"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-head: stdin: record 1 (id 1000): field language_output is missing (the mlm head needs lx-encode's language_output)" ]
	outputs 0 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
del recs[0]["input_ids"]
write_records(recs)' > "$T/in"
	run "$BIN/lx-head" -m "$TINY" --heads mlm < "$T/in"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-head: stdin: record 1 (id 1000): field input_ids is missing (the mlm head looks for [MASK] in it)" ]
}

@test "names vision_output when the obj head has none, and checks shapes and dtypes" {
	outputs 0 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
del recs[0]["vision_output"]
write_records(recs)' > "$T/in"
	run "$BIN/lx-head" -m "$TINY" --heads obj < "$T/in"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-head: stdin: record 1 (id 1000): field vision_output is missing (the obj head needs lx-encode's vision_output)" ]
	outputs 0 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
recs[0]["vision_output"] = recs[0]["vision_output"][:, :16].copy()
write_records(recs)' > "$T/in"
	run "$BIN/lx-head" -m "$TINY" --heads obj < "$T/in"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-head: stdin: record 1 (id 1000): field vision_output: shape [10, 16], expected [N, 32]" ]
	outputs 0 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
recs[0]["pooled_output"] = recs[0]["pooled_output"].astype("<i4")
write_records(recs)' > "$T/in"
	run "$BIN/lx-head" -m "$TINY" --heads qa < "$T/in"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-head: stdin: record 1 (id 1000): field pooled_output: dtype <i4, expected a float dtype (<f4)" ]
}

@test "refuses a labels file whose length differs from num_qa_labels" {
	run "$BIN/lx-head" -m "$TINY" --labels "$LAB/vqa_trainval_label2ans.json" < /dev/null
	[ "$status" -eq 3 ]
	[ "$output" = "lx-head: $LAB/vqa_trainval_label2ans.json: 3129 names, but the model has 12 answers (num_qa_labels)" ]
	run "$BIN/lx-head" -m "$TINY" --objects "$LAB/vg_attributes_vocab.txt" < /dev/null
	[ "$status" -eq 3 ]
	[ "$output" = "lx-head: $LAB/vg_attributes_vocab.txt: 400 names, but the model has 1600 object labels (num_object_labels)" ]
}

@test "refuses a labels file that is not a list of answers" {
	echo '{"yes": 0}' > "$T/bad.json"
	echo '["yes", 3]' > "$T/bad2.json"
	run "$BIN/lx-head" -m "$TINY" --labels "$T/bad.json" < /dev/null
	[ "$status" -eq 3 ]
	[ "$output" = "lx-head: $T/bad.json: expected a JSON list of answers" ]
	run "$BIN/lx-head" -m "$TINY" --labels "$T/bad2.json" < /dev/null
	[ "$status" -eq 3 ]
	[ "$output" = "lx-head: $T/bad2.json: entry 1 is neither a string nor an object with a string \"ans\"" ]
	run "$BIN/lx-head" -m "$TINY" --labels "$T/none.json" < /dev/null
	[ "$status" -eq 3 ]
	[ "$output" = "lx-head: $T/none.json: No such file or directory" ]
}

@test "refuses a head the model does not have" {
	$PY "$CASES" model "$TINY" "$T/noqa" no-qa
	run "$BIN/lx-head" -m "$T/noqa" --heads qa,match < /dev/null
	[ "$status" -eq 3 ]
	[ "$output" = "lx-head: $T/noqa: the model has no qa (answer head): no tensor answer_head.* in model.safetensors" ]
	$PY "$CASES" model "$TINY" "$T/bare" no-heads
	run "$BIN/lx-head" -m "$T/bare" < /dev/null
	[ "$status" -eq 3 ]
	[ "$output" = "lx-head: $T/bare: the model has no heads (answer_head.*, cls.*, obj_predict_head.*)" ]
}

@test "without --heads, runs every head the model has" {
	$PY "$CASES" model "$TINY" "$T/noqa" no-qa
	outputs 0 | "$BIN/lx-head" -m "$T/noqa" > "$T/out"
	$PY -c '
import sys
from lxtest import read_records
r = read_records(open(sys.argv[1], "rb"))[0]
assert "answers" not in r and "question_answering_score" not in r
assert all(k in r for k in ("match_prob", "masked_words", "obj_head_obj", "obj_head_attr", "obj_head_feat"))' "$T/out"
}

@test "rejects labels outside their range, naming the field and position" {
	$PY "$CASES" labelled "$TINY/golden.safetensors" | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
recs[0]["labels"] = recs[0]["labels"].copy()
recs[0]["labels"][3] = 30522
write_records(recs)' | "$BIN/lx-encode" -m "$TINY" > "$T/in"
	run "$BIN/lx-head" -m "$TINY" < "$T/in"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-head: stdin: record 1: field labels: 30522 at position 3 is outside [0, 30522) (and is not -100, ignored)" ]
}

@test "a VQA submission cut short by a bad record still holds the answers before it" {
	qa_model "$T/m" 3129
	outputs 0 1 2 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
del recs[2]["question_id"]
write_records(recs)' > "$T/in"
	run "$BIN/lx-head" -m "$T/m" --labels "$LAB/vqa_trainval_label2ans.json" --submit vqa < "$T/in"
	[ "$status" -eq 1 ]
	"$BIN/lx-head" -m "$T/m" --labels "$LAB/vqa_trainval_label2ans.json" --submit vqa < "$T/in" > "$T/sub" 2> "$T/err" || true
	[ "$(cat "$T/err")" = "lx-head: stdin: record 3: field question_id is missing (--submit vqa needs it)" ]
	$PY -c 'import json, sys; s = json.load(open(sys.argv[1])); assert [x["question_id"] for x in s] == [1000, 1001]' "$T/sub"
}

# ---- batches, threads and the heads a submission needs ----

@test "--batch N gives numpy's answers, and scores within float rounding of --batch 1, whatever N and --threads" {
	# float rounding: 2e-6 of the largest score (about 30 here). OpenBLAS sums a 4-row product in another order
	# than a 1-row one: 1.3e-5 apart, 4.6e-7 of the largest score, measured.
	qa_model "$T/m" 3129
	outputs 0 1 2 3 4 5 > "$T/in"
	for c in 0 1 2 3 4 5; do $PY "$CASES" answer-head "$T/m" "$TINY/golden.safetensors" $c > "$T/l$c"; done
	"$BIN/lx-head" -m "$T/m" --heads qa < "$T/in" > "$T/b1"
	for b in 2 4 64; do
		"$BIN/lx-head" -m "$T/m" --heads qa --batch $b --threads 2 < "$T/in" > "$T/b$b"
	done
	$PY - "$T" <<'EOF'
import sys, numpy as np
from lxtest import read_records
t = sys.argv[1]
one = read_records(open(t + "/b1", "rb"))
want = [np.loadtxt("%s/l%d" % (t, c)) for c in range(6)]
for b in (2, 4, 64):
    got = read_records(open("%s/b%d" % (t, b), "rb"))
    assert [r["case"] for r in got] == list(range(6))
    for r, o, w in zip(got, one, want):
        q = r["question_answering_score"]
        assert np.abs(q - o["question_answering_score"]).max() <= 2e-6 * np.abs(o["question_answering_score"]).max(), b
        assert np.abs(q - w).max() <= 1e-4, b
        assert r["answers"][0]["index"] == int(np.argmax(w)) == o["answers"][0]["index"]
EOF
}

@test "--batch: a bad record inside a batch stops the run after writing every record before it" {
	outputs 0 1 2 3 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
del recs[2]["pooled_output"]
write_records(recs)' > "$T/in"
	"$BIN/lx-head" -m "$TINY" --heads qa --batch 4 < "$T/in" > "$T/out" 2> "$T/err" && exit 1 || [ $? -eq 1 ]
	[ "$(cat "$T/err")" = "lx-head: stdin: record 3 (id 1002): field pooled_output is missing (the qa and match heads need lx-encode's pooled_output)" ]
	$PY -c 'import sys; from lxtest import read_records; r = read_records(open(sys.argv[1], "rb")); assert [x["case"] for x in r] == [0, 1] and all("answers" in x for x in r)' "$T/out"
}

@test "--submit vqa runs only the answer head: records with pooled_output alone are answered as numpy answers them" {
	qa_model "$T/m" 3129
	outputs 0 2 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
for r in recs:
    del r["language_output"], r["vision_output"], r["input_ids"], r["visual_feats"]
write_records(recs)' > "$T/in"
	"$BIN/lx-head" -m "$T/m" --labels "$LAB/vqa_trainval_label2ans.json" --submit vqa < "$T/in" > "$T/sub"
	for c in 0 2; do $PY "$CASES" answer-head "$T/m" "$TINY/golden.safetensors" $c > "$T/l$c"; done
	$PY - "$T" "$LAB/vqa_trainval_label2ans.json" <<'EOF'
import json, sys, numpy as np
t, lab = sys.argv[1:]
ans = json.load(open(lab))
want = [{"question_id": 1000 + c, "answer": ans[int(np.argmax(np.loadtxt("%s/l%d" % (t, c))))]} for c in (0, 2)]
assert json.load(open(t + "/sub")) == want
EOF
	# the stream still runs every head, and says what the mlm head misses
	run "$BIN/lx-head" -m "$T/m" --labels "$LAB/vqa_trainval_label2ans.json" < "$T/in"
	[ "$status" -eq 1 ]
}

# ---- usage ----

@test "--submit vqa without answer names is a usage error" {
	run "$BIN/lx-head" -m "$TINY" --submit vqa < /dev/null
	[ "$status" -eq 2 ]
	[ "$output" = "lx-head: --submit vqa needs the qa head and answer names (--labels FILE, or answers.json or answers.txt in the model directory)" ]
}

@test "rejects an unknown head, --json with --submit, and a missing -m" {
	run "$BIN/lx-head" -m "$TINY" --heads qa,vqa
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-head: --heads: unknown head 'vqa' (expected qa, match, mlm, obj or nlvr2)" ]
	[ "${lines[1]}" = "usage: lx-head -m DIR [options]" ]
	run "$BIN/lx-head" -m "$TINY" --json --submit vqa
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-head: --json and --submit cannot be used together" ]
	run "$BIN/lx-head" --top 3
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-head: -m DIR is required" ]
	[ "${lines[1]}" = "usage: lx-head -m DIR [options]" ]
	run "$BIN/lx-head" -m "$TINY" --top 0
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-head: --top takes a whole number from 1 to 1048576, not '0'" ]
}

@test "-h prints the usage on stdout and exits 0" {
	"$BIN/lx-head" -h > "$T/out" 2> "$T/err"
	grep -q '^usage: lx-head -m DIR ' "$T/out"
	[ ! -s "$T/err" ]
}

@test "an empty stream gives an empty stream, and an empty submission list" {
	"$BIN/lx-head" -m "$TINY" < /dev/null > "$T/out"
	[ ! -s "$T/out" ]
	cp -r "$TINY" "$T/m"
	twelve "$T/m/answers.txt"
	"$BIN/lx-head" -m "$T/m" --submit vqa < /dev/null > "$T/sub"
	[ "$(cat "$T/sub")" = "[]" ]
}

@test "a full disk on stdout is an error (status 4)" {
	outputs 0 > "$T/in"
	for fmt in "" --json; do
		st=0
		"$BIN/lx-head" -m "$TINY" $fmt < "$T/in" > /dev/full 2> "$T/err" || st=$?
		[ "$st" -eq 4 ]
		[ "$(cat "$T/err")" = "lx-head: stdout: write failed: No space left on device" ]
	done
}

# ---- the example ----

@test "examples/vqa-eval: make head scores encoded records and writes the VQA submission" {
	qa_model "$T/m" 3129
	$PY "$CASES" answer-head "$T/m" "$TINY/golden.safetensors" 0 > "$T/l0"
	outputs 0 1 2 | $PY -c '
import json, sys, numpy as np
from lxtest import read_records, write_records
best = json.load(open(sys.argv[1]))[int(np.argmax(np.loadtxt(sys.argv[2])))]
recs = read_records()
recs[0]["label"] = {best: 1.0, "zzz": 0.3}  # right: 1.0
recs[1]["label"] = {"zzz": 1.0}              # wrong: 0
write_records(recs)                          # recs[2] has no label: answered, not scored
' "$LAB/vqa_trainval_label2ans.json" "$T/l0" > "$T/enc"
	make -s --no-print-directory -C "$TOP/examples/vqa-eval" head BIN="$BIN" MODEL="$T/m" ENCODED="$T/enc" OUT="$T/out" \
		LABELS="$LAB/vqa_trainval_label2ans.json" > "$T/stdout" 2> "$T/err"
	[ "$(tail -n 1 "$T/err")" = "lx-head: score 0.500000 over 2 questions" ]
	$PY -c '
import json, sys
out = sys.argv[1]
assert json.loads(open(out + "/score.json").read()) == {"score": 0.5, "questions": 2}
assert [s["question_id"] for s in json.load(open(out + "/submission.json"))] == [1000, 1001, 1002]
assert json.loads(open(sys.argv[2]).read()) == {"score": 0.5, "questions": 2}' "$T/out" "$T/stdout"
}

@test "examples/vqa-eval: the full pipeline runs tokenize, featpack, encode and head" {
	echo '[{"question_id": 1, "img_id": "COCO_val2014_000000000042", "sent": "What is it?", "label": {"net": 1}},
	       {"question_id": 2, "img_id": "COCO_val2014_000000000042", "sent": "Why?"}]' > "$T/q.json"
	touch "$T/f.tsv"
	make -n -C "$TOP/examples/vqa-eval" MODEL=M QUESTIONS="$T/q.json" FEATS="$T/f.tsv" OUT="$T/out" \
		BIN=B LABELS=L > "$T/plan"
	tr -d '\\\n' < "$T/plan" | tr -s ' ' > "$T/cmd"
	grep -qF "B/lx-tokenize -m M --jsonl --max-length 20 $T/q.json | B/lx-featpack --join $T/f.tsv | B/lx-encode -m M | B/lx-head -m M --labels L --score-file $T/out/score.json --submit vqa > $T/out/submission.json.tmp" "$T/cmd"
}

# ---- the stream ----

@test "copies every other field of a record unchanged" {
	$PY "$TOP/tests/py/encode_cases.py" extras "$TINY/golden.safetensors" | "$BIN/lx-encode" -m "$TINY" |
		"$BIN/lx-head" -m "$TINY" > "$T/out"
	$PY "$TOP/tests/py/encode_cases.py" check-extras < "$T/out"
}

@test "--progress shows the records done on stderr and leaves stdout alone" {
	outputs 0 1 > "$T/in"
	"$BIN/lx-head" -m "$TINY" < "$T/in" > "$T/plain"
	"$BIN/lx-head" -m "$TINY" --progress < "$T/in" > "$T/out" 2> "$T/err"
	cmp "$T/plain" "$T/out"
	[[ "$(cat "$T/err")" =~ ^"lx-head:     2 records in 0:0"[0-9]", "[0-9.]+" records/s, "[0-9.]+" "[KM]?B$ ]]
}

@test "--score on a VQA label without answer names says what is missing" {
	outputs 0 | $PY -c '
from lxtest import read_records, write_records
recs = read_records()
recs[0]["label"] = {"net": 1}
write_records(recs)' > "$T/in"
	run "$BIN/lx-head" -m "$TINY" --score < "$T/in"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-head: stdin: record 1 (id 1000): field label: a VQA/GQA label needs the qa head and answer names" ]
}

@test "refuses a soft-score label with a score outside [0, 1] or a key that is no string, as lx-train does" {
	cp -r "$TINY" "$T/m"
	twelve "$T/m/answers.txt"
	for case in '{"a1": 1.5}|the score of "a1" is 1.5, outside [0, 1]' '{5: 0.5}|a key is not a string'; do
		outputs 0 | $PY -c '
import sys
from lxtest import read_records, write_records
recs = read_records()
recs[0]["label"] = eval(sys.argv[1])
write_records(recs)' "${case%%|*}" > "$T/in"
		run "$BIN/lx-head" -m "$T/m" --heads qa < "$T/in"
		[ "$status" -eq 1 ]
		[ "$output" = "lx-head: stdin: record 1 (id 1000): field label: ${case#*|}" ]
	done
}

@test "rejects obj_labels without obj_mask, and labels whose length differs from the boxes" {
	$PY "$CASES" labelled "$TINY/golden.safetensors" | "$BIN/lx-encode" -m "$TINY" > "$T/enc"
	$PY -c '
from lxtest import read_records, write_records
recs = read_records()
del recs[0]["obj_mask"]
write_records(recs)' < "$T/enc" > "$T/in"
	run "$BIN/lx-head" -m "$TINY" < "$T/in"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-head: stdin: record 1: field obj_mask is missing (obj_labels needs it)" ]
	$PY -c '
from lxtest import read_records, write_records
recs = read_records()
recs[0]["attr_labels"] = recs[0]["attr_labels"][:5].copy()
write_records(recs)' < "$T/enc" > "$T/in"
	run "$BIN/lx-head" -m "$TINY" < "$T/in"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-head: stdin: record 1: field attr_labels: shape must be [8] to match vision_output" ]
}

# ---- pair records and the authors' NLVR2 model (../fixtures/nlvr2-micro) ----

# nlvr2-micro's BEST.pth converted with micro's config into $T/nv; pair records with labels encoded in $T/enc.
nlvr2_model() {
	"$BIN/lx-convert" -q --config "$MICRO/config.json" "$FIX/nlvr2-micro/BEST.pth" "$T/nv"
	$PY "$TOP/tests/py/nlvr2_cases.py" inputs "$FIX/nlvr2-micro" label | "$BIN/lx-encode" -m "$T/nv" > "$T/enc"
}

@test "the authors' NLVR2 model: pooled_output0/1 and nlvr2_logits match nlvr2-micro within 1e-4" {
	nlvr2_model
	"$BIN/lx-head" -m "$T/nv" < "$T/enc" > "$T/out"
	$PY "$TOP/tests/py/nlvr2_cases.py" compare "$FIX/nlvr2-micro" pooled_output0,pooled_output1,nlvr2_logits < "$T/out"
	$PY - "$T/out" "$FIX/nlvr2-micro/golden.json" <<'PY'
import json, sys
from lxtest import read_records
gold = json.load(open(sys.argv[2]))["cases"]
out = read_records(open(sys.argv[1], "rb"))
assert [r["nlvr2_prediction"] for r in out] == [c["prediction"] for c in gold]
PY
}

@test "--submit nlvr2 with the authors' NLVR2 model writes the reference predictions, --score their accuracy" {
	nlvr2_model
	"$BIN/lx-head" -m "$T/nv" --submit nlvr2 --score < "$T/enc" > "$T/sub" 2> "$T/err"
	$PY - "$FIX/nlvr2-micro/golden.json" > "$T/want" <<'PY'
import json, sys
for c in json.load(open(sys.argv[1]))["cases"]:
    print("%s,%s" % (c["identifier"], c["prediction"]))
PY
	diff "$T/want" "$T/sub"
	grep -qx 'lx-head: NLVR2 accuracy 1.000000 over 6 pairs' "$T/err"
}

@test "NLVR2 labels are read as JSON booleans or as 0/1 alike" {
	nlvr2_model
	$PY - "$T/enc" > "$T/enc01" <<'PY'
import sys
from lxtest import read_records, write_records
recs = read_records(open(sys.argv[1], "rb"))
for i, r in enumerate(recs):
    r["label"] = int(not r["label"]) if i == 0 else int(r["label"])
write_records(recs)
PY
	"$BIN/lx-head" -m "$T/nv" --submit nlvr2 --score < "$T/enc01" > /dev/null 2> "$T/err"
	grep -qx 'lx-head: NLVR2 accuracy 0.833333 over 6 pairs' "$T/err"
}

@test "per-image heads run on each image of a pair record, fields suffixed 0 and 1" {
	$PY "$TOP/tests/py/nlvr2_cases.py" inputs "$FIX/nlvr2-micro" label | "$BIN/lx-encode" -m "$MICRO" > "$T/enc"
	"$BIN/lx-head" -m "$MICRO" < "$T/enc" > "$T/out"
	$PY - "$T/enc" "$T/out" <<'PY'
import sys
import numpy as np
from lxtest import read_records
enc = read_records(open(sys.argv[1], "rb"))
out = read_records(open(sys.argv[2], "rb"))
for e, r in zip(enc, out):
    for k in "01":
        for f in ("question_answering_score", "cross_relationship_score", "match_prob", "obj_head_obj", "answers"):
            assert f + k in r, (f + k, sorted(r))
        # the match head by hand: cls.seq_relationship is micro's Linear(H, 2)
    assert "question_answering_score" not in r and "nlvr2_logits" not in r
PY
	"$BIN/lx-head" -m "$MICRO" --submit nlvr2 < "$T/enc" > "$T/sub"
	$PY - "$T/out" "$T/sub" <<'PY'
import sys
from lxtest import read_records
out = read_records(open(sys.argv[1], "rb"))
want = ["%s,%s" % (r["identifier"], (r["match_prob0"] + r["match_prob1"]) / 2 >= 0.5) for r in out]
assert open(sys.argv[2]).read().split() == want
PY
}

# ---- honest scores with --keep-going ----

@test "--keep-going: a failed question counts as wrong in --score and stays in --submit with an empty answer" {
	qa_model "$T/m" 3129
	outputs 0 1 2 3 4 > "$T/good"
	"$BIN/lx-head" -m "$T/m" --labels "$LAB/vqa_trainval_label2ans.json" --submit vqa < "$T/good" > "$T/pred"
	# every label gives the predicted answer 1.0; record 3 then lacks pooled_output (refused here), record 4
	# comes as an error record from an earlier tool
	$PY - "$T/good" "$T/pred" > "$T/in" <<'PY'
import json, sys
from lxtest import read_records, write_records
recs = read_records(open(sys.argv[1], "rb"))
for r, p in zip(recs, json.load(open(sys.argv[2]))):
    r["label"] = {p["answer"]: 1.0}
del recs[2]["pooled_output"]
recs[3] = {"question_id": recs[3]["question_id"], "label": recs[3]["label"], "error": "lx-featpack: no image"}
write_records(recs)
PY
	"$BIN/lx-head" -m "$T/m" --labels "$LAB/vqa_trainval_label2ans.json" --keep-going --submit vqa --score \
		< "$T/in" > "$T/sub" 2> "$T/err" || true
	grep -qx 'lx-head: score 0.600000 over 5 questions, 2 failed and counted as wrong' "$T/err"
	grep -qx 'lx-head: record 3 (id 1002): failed: submitted with an empty answer' "$T/err"
	grep -qx 'lx-head: record 4 (id 1003): failed: submitted with an empty answer' "$T/err"
	$PY - "$T/sub" "$T/pred" <<'PY'
import json, sys
sub, pred = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert [s["question_id"] for s in sub] == [1000, 1001, 1002, 1003, 1004], sub
assert [s["answer"] for s in sub] == [pred[0]["answer"], pred[1]["answer"], "", "", pred[4]["answer"]]
PY
	"$BIN/lx-head" -m "$T/m" --labels "$LAB/vqa_trainval_label2ans.json" --keep-going --drop-failed --submit vqa \
		--score < "$T/in" > "$T/sub" 2> "$T/err" || true
	grep -qx 'lx-head: score 1.000000 over 3 questions' "$T/err"
	$PY -c 'import json, sys; assert [x["question_id"] for x in json.load(open(sys.argv[1]))] == [1000, 1001, 1004]' "$T/sub"
}

@test "--keep-going --submit nlvr2: a failed pair is submitted as False and scored as wrong" {
	nlvr2_model
	$PY - "$T/enc" > "$T/in" <<'PY'
import sys
from lxtest import read_records, write_records
recs = read_records(open(sys.argv[1], "rb"))
del recs[2]["pooled_output1"]
write_records(recs)
PY
	"$BIN/lx-head" -m "$T/nv" --keep-going --submit nlvr2 --score < "$T/in" > "$T/sub" 2> "$T/err" || true
	[ "$(cut -d, -f1 "$T/sub" | tr '\n' ' ')" = "dev-0-0-0 dev-1-0-1 dev-2-0-0 dev-3-0-1 dev-4-0-0 dev-5-0-1 " ]
	grep -qx 'dev-2-0-0,False' "$T/sub"
	grep -qx 'lx-head: record 3 (id dev-2-0-0): failed: submitted as False' "$T/err"
	grep -qx 'lx-head: NLVR2 accuracy 0.833333 over 6 pairs, 1 failed and counted as wrong' "$T/err"
}
