#!/bin/sh
# The documentation's commands, run: tests/doc.sh BINDIR FILE... (README.md, man pages) runs every command block
# tests/py/docblocks.py finds in the FILEs, each file's blocks in order in a scratch directory of its own, where
# the names the documentation uses for the hub's models and the datasets are the fixtures (the table below).
# Blocks marked "# (needs ...)" are listed as skipped with the reason. `python3` is Debian's /usr/bin/python3
# (numpy, msgpack-numpy), as the README says. Prints one line per block and a count; exits 1 if a block failed.
set -u
BIN=$(cd "$1" && pwd)
shift
TOP=$(cd "$(dirname "$0")/.." && pwd)
FIX=$TOP/tests/fixtures
PY=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lx-doc.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PATH="$WORK/pybin:$BIN:$PATH"

# ---- the names the documentation uses, and what stands in for them here ----
S=$WORK/template
mkdir -p "$WORK/pybin" "$S/data/vqa" "$S/data/mscoco_imgfeat" "$S/snap/pretrained" "$S/snap/vqa" "$S/train2014" \
	"$S/models"
ln -s "$PY" "$WORK/pybin/python3"
# fine-tuned models (lxmert-vqa, lxmert-gqa, M, model): the demo model, with its 70 answers
cp -r "$TOP/models/demo" "$S/lxmert-vqa"
for m in lxmert-gqa M model DIR; do ln -s lxmert-vqa "$S/$m"; done
# the pretrained model (every head): the tiny random test model
cp -r "$FIX/tiny" "$S/lxmert-base"
# the detector and a photo
ln -s "$FIX/frcnn-tiny" "$S/frcnn"
cp "$FIX/frcnn-tiny/images/000456.jpg" "$S/photo.jpg"
cp "$FIX/vocab.txt" "$S/vocab.txt"
ln -s "$TOP/labels" "$S/labels"
# the tree, for the examples that build against it (liblx(3)) or run its Makefiles
for d in examples lib tests; do ln -s "$TOP/$d" "$S/$d"; done
ln -s "$BIN/.." "$S/build"
ln -s "$BIN" "$S/bin"
ln -s "$TOP/models/demo" "$S/models/demo"
cp "$FIX/frcnn-tiny/images/COCO_train2014_000000132417.jpg" "$S/train2014/"
# questions, one a line and as the authors' JSON list
for q in questions.jsonl minival.jsonl; do cp "$FIX/questions.jsonl" "$S/$q"; done
$PY -c 'import json, sys; json.dump([json.loads(l) for l in sys.stdin], sys.stdout, indent=1)' \
	< "$FIX/questions.jsonl" > "$S/minival.json"
for q in data/vqa/minival.json data/vqa/train.json; do cp "$S/minival.json" "$S/$q"; done
# q.jsonl, for --keep-going: one question more, about an image the TSV does not hold
{ cat "$FIX/questions.jsonl"; echo '{"question_id": 1, "img_id": "COCO_val2014_000000000001", "sent": "Is it?"}'; } \
	> "$S/q.jsonl"
# questions.json: the text in a field named question
$PY -c 'import json, sys; json.dump([{"question_id": q["question_id"], "img_id": q["img_id"], "question": q["sent"]}
           for q in map(json.loads, sys.stdin)], sys.stdout)' < "$FIX/questions.jsonl" > "$S/questions.json"
# features: the sample of the authors' train2014 TSV
for t in val2014_obj36.tsv train2014_obj36.tsv feats.tsv F.tsv data/mscoco_imgfeat/val2014_obj36.tsv \
	data/mscoco_imgfeat/train2014_obj36.tsv; do
	cp "$FIX/train2014_obj36_sample.tsv" "$S/$t"
done
# the authors' checkpoints: the micro model in their layout
for c in model_LXRT.pth BEST.pth snap/pretrained/model_LXRT.pth snap/vqa/BEST.pth; do
	ln -s "$FIX/micro/lxrt_original.pth" "$S/$c"
done
# streams the examples start from: questions with their boxes, encoded (with attentions) and answered
( cd "$S" && lx-tokenize -m lxmert-vqa --jsonl --tokens questions.jsonl | lx-featpack --join feats.tsv > questions.mp &&
  cp questions.mp heldout.mp &&
  lx-encode -m lxmert-vqa --attentions < questions.mp | lx-head -m lxmert-vqa > encoded.mp &&
  cp encoded.mp out.mp ) 2> "$WORK/setup.err" || { cat "$WORK/setup.err" >&2; echo "doc tests: the stand-ins could not be made" >&2; exit 1; }

# ---- the blocks ----
ran=0 skipped=0 failed=0 other=0
for doc in "$@"; do
	name=$(basename "$doc")
	B=$WORK/blocks.$name
	$PY "$TOP/tests/py/docblocks.py" "$B" "$doc" || exit 1
	D=$WORK/run.$name
	cp -r "$S" "$D"
	while IFS="$(printf '\t')" read -r n kind where reason; do
		case $kind in
		other) other=$((other + 1)); continue ;;
		skip) skipped=$((skipped + 1)); echo "skipped $where: $reason"; continue ;;
		sh) # every command of a pipeline must succeed, but for one that pipes into head, which closes the pipe
			cmd="bash -e -o pipefail $B/$n.sh"
			grep -q '| *head\b' "$B/$n.sh" && cmd="bash -e $B/$n.sh"
			if grep -q '^cc ' "$B/$n.sh" && nm "$BIN/lx-encode" 2> /dev/null | grep -q __asan_init; then
				skipped=$((skipped + 1))
				echo "skipped $where: a sanitizer build (the program would link liblx.a without the sanitizers)"
				continue
			fi ;;
		python) cmd="$PY $B/$n.py" ;;
		esac
		if (cd "$D" && timeout 600 $cmd) > "$WORK/out" 2>&1; then
			ran=$((ran + 1))
			echo "ran     $where"
		else
			failed=$((failed + 1))
			echo "FAILED  $where:"
			sed 's/^/    | /' "$B/$n".*
			tail -n 20 "$WORK/out" | sed 's/^/    > /'
		fi
	done < "$B/index.tsv"
done
echo "doc tests: $ran blocks ran, $skipped skipped, $failed failed ($other blocks are not commands: diagrams, output, synopses)"
[ "$failed" -eq 0 ]
