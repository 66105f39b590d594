#!/usr/bin/env bats
# lx-featpack: region-feature files into the stream. Golden values come from the fixture's expected.json and
# from tests/py/featref.py, which reads every layout with Python's csv/base64 and numpy's own np.load.

load helpers

setup() {
	REF="$TOP/tests/py/featref.py"
	TSV="$FIX/train2014_obj36_sample.tsv"
	W="$BATS_TEST_TMPDIR"
	cp "$TSV" "$W/feats.tsv"
	"$PY" "$REF" questions "$FIX/questions.jsonl" > "$W/q.mp"
}

records() { "$PY" -c 'import msgpack,sys; print(sum(1 for _ in msgpack.Unpacker(open(sys.argv[1],"rb"))))' "$1"; }

# ---- converting ----

@test "converts the authors' obj36 sample exactly as their csv/base64/numpy loader reads it" {
	"$BIN/lx-featpack" "$TSV" > "$W/out.mp"
	run "$PY" "$REF" check "$W/out.mp" "$TSV"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "gives the values of the sample's expected.json" {
	"$BIN/lx-featpack" "$TSV" > "$W/out.mp"
	run "$PY" "$REF" check-expected "$W/out.mp" "$FIX/train2014_obj36_sample.expected.json"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "object ids name what the first two images show in the Visual Genome vocabulary" {
	"$BIN/lx-featpack" "$TSV" > "$W/out.mp"
	run "$PY" "$REF" names "$W/out.mp" "$FIX/vg_objects_vocab.txt" obj_ids 5
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "COCO_train2014_000000132417 sky tree tree tree field" ]
	[ "${lines[1]}" = "COCO_train2014_000000573195 window window cat window graffiti" ]
	[ "${#lines[@]}" -eq 10 ]
}

@test "attribute ids name colours and materials in the attribute vocabulary" {
	"$BIN/lx-featpack" "$TSV" > "$W/out.mp"
	run "$PY" "$REF" names "$W/out.mp" "$FIX/vg_attributes_vocab.txt" attr_ids 3
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "COCO_train2014_000000132417 blue white green" ]
	[ "${lines[9]}" = "COCO_train2014_000000201446 orange white wooden" ]
}

@test "--max-boxes keeps the first N boxes of every field" {
	"$BIN/lx-featpack" --max-boxes 10 "$TSV" > "$W/out.mp"
	run "$PY" "$REF" check "$W/out.mp" --max-boxes 10 "$TSV"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "converts a BUTD TSV written by csv and base64, width before height" {
	"$PY" "$REF" write-butd "$W/butd.tsv" 5
	"$BIN/lx-featpack" "$W/butd.tsv" > "$W/out.mp"
	run "$PY" "$REF" check "$W/out.mp" "$W/butd.tsv"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "converts .npz files from np.savez and np.savez_compressed, ids in members or in MILVLG's pickled info" {
	"$PY" "$REF" write-npz "$W/deflated" 3 deflated
	"$PY" "$REF" write-npz "$W/stored" 3 stored
	"$BIN/lx-featpack" "$W/deflated" "$W/stored/000000000601.npz" > "$W/out.mp"
	run "$PY" "$REF" check "$W/out.mp" "$W/deflated" "$W/stored/000000000601.npz"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "converts .npy files: np.save of a dict, and MMF's features beside their _info.npy" {
	"$PY" "$REF" write-npy "$W/npy" 4
	"$BIN/lx-featpack" "$W/npy" > "$W/out.mp"
	run "$PY" "$REF" check "$W/out.mp" "$W/npy"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
	[ "$(records "$W/out.mp")" -eq 4 ]
}

@test "reads dicts pickled with protocols 2 to 5" {
	for p in 2 3 4 5; do
		"$PY" "$REF" write-npy "$W/p$p" 2 "$p"
		"$BIN/lx-featpack" "$W/p$p/000000000700.npy" > "$W/out$p.mp"
		run "$PY" "$REF" check "$W/out$p.mp" "$W/p$p/000000000700.npy"
		[ "$output" = "ok" ]
	done
}

@test "refuses a pickle that calls anything but numpy's array constructors" {
	"$PY" -c '
import datetime, numpy as np, sys
np.save(sys.argv[1], {"x": np.zeros((1, 4), np.float32), "when": datetime.date(2020, 1, 2)})' "$W/evil.npy"
	run "$BIN/lx-featpack" "$W/evil.npy"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/evil.npy: pickle: calls datetime.date, which is not read (only numpy arrays, dtypes and scalars are)" ]
}

@test "a features .npy without its _info.npy is status 3" {
	"$PY" -c 'import numpy as np, sys; np.save(sys.argv[1], np.zeros((2, 4), np.float32))' "$W/lone.npy"
	run "$BIN/lx-featpack" "$W/lone.npy"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-featpack: $W/lone_info.npy: No such file or directory (a .npy of features needs its _info.npy beside it)" ]
}

@test "rejects a dict .npy whose boxes disagree with num_bbox" {
	"$PY" -c '
import numpy as np, sys
np.save(sys.argv[1], {"x": np.zeros((3, 4), np.float32), "bbox": np.ones((2, 4)), "num_bbox": 3, "image_h": 9,
                      "image_w": 9})' "$W/img.npy"
	run "$BIN/lx-featpack" "$W/img.npy"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/img.npy: key bbox has 2 dimensions, 2 rows; expected [3,4] (num_bbox 3)" ]
}

@test "reads back its own stream as a feature file, byte for byte" {
	"$BIN/lx-featpack" "$TSV" > "$W/a.mp"
	"$BIN/lx-featpack" "$W/a.mp" > "$W/b.mp"
	cmp "$W/a.mp" "$W/b.mp"
}

@test "--no-normalize takes boxes already in [0, 1] as they are" {
	"$PY" "$REF" normalize-tsv "$TSV" "$W/norm.tsv"
	"$BIN/lx-featpack" --no-normalize "$W/norm.tsv" > "$W/out.mp"
	run "$PY" "$REF" check "$W/out.mp" --normalized "$W/norm.tsv"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "refuses boxes already in [0, 1] without --no-normalize" {
	"$PY" "$REF" normalize-tsv "$TSV" "$W/norm.tsv"
	run "$BIN/lx-featpack" "$W/norm.tsv"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/norm.tsv: line 1 (img_id COCO_train2014_000000132417): the boxes all lie within [0, 1], as if already normalised; expected pixels of a 500x333 image (--no-normalize takes them as they are)" ]
}

@test "refuses pixel boxes with --no-normalize" {
	run "$BIN/lx-featpack" --no-normalize "$TSV"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $TSV: line 1 (img_id COCO_train2014_000000132417): box 0 x2 is 361.846588, outside [0, 1] (the boxes were taken as normalised already)" ]
}

@test "converts features read from a pipe, a TSV or a stream" {
	"$BIN/lx-featpack" "$TSV" > "$W/a.mp"
	cat "$TSV" | "$BIN/lx-featpack" /dev/stdin > "$W/b.mp"
	cmp "$W/a.mp" "$W/b.mp"
	cat "$W/a.mp" | "$BIN/lx-featpack" /dev/stdin > "$W/c.mp"
	cmp "$W/a.mp" "$W/c.mp"
}

# ---- joining ----

@test "joins each question of questions.jsonl to its image, keeping its own fields" {
	"$BIN/lx-featpack" --join "$TSV" < "$W/q.mp" > "$W/out.mp"
	run "$PY" "$REF" check-join "$W/out.mp" "$W/q.mp" "$TSV"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "joined questions find their answers among their image's objects and attributes" {
	"$BIN/lx-featpack" --join "$TSV" < "$W/q.mp" > "$W/out.mp"
	run "$PY" "$REF" answers-seen "$W/out.mp" "$FIX/vg_objects_vocab.txt" "$FIX/vg_attributes_vocab.txt"
	[ "$status" -eq 0 ]
	[ "$(echo $output)" = "132417000 blue 573195000 cat 578174001 yellow 207647001 black 84002000 bedroom 84002001 blue 306661001 yellow 387267000 red 131486000 skiing 131486001 yellow 201446000 carrot 201446001 wood" ]
}

@test "joins questions in random order with a one-image cache" {
	"$PY" "$REF" shuffle "$W/q.mp" 3 > "$W/shuf.mp"
	"$BIN/lx-featpack" --join --cache 1 "$TSV" < "$W/shuf.mp" > "$W/out.mp"
	run "$PY" "$REF" check-join "$W/out.mp" "$W/shuf.mp" "$TSV"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "joins NLVR2 records to both images, fields suffixed 0 and 1" {
	"$PY" "$REF" pairs "$FIX/questions.jsonl" > "$W/pairs.mp"
	"$BIN/lx-featpack" --join "$TSV" < "$W/pairs.mp" > "$W/out.mp"
	run "$PY" "$REF" check-join "$W/out.mp" "$W/pairs.mp" --pairs "$TSV"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "--key names the field that holds the image" {
	"$PY" "$REF" pairs "$FIX/questions.jsonl" > "$W/pairs.mp"
	"$BIN/lx-featpack" --join --key img0 --key img1 "$TSV" < "$W/pairs.mp" > "$W/a.mp"
	"$BIN/lx-featpack" --join "$TSV" < "$W/pairs.mp" > "$W/b.mp"
	cmp "$W/a.mp" "$W/b.mp"
	"$BIN/lx-featpack" --join --key img1 "$TSV" < "$W/pairs.mp" > "$W/one.mp"
	run "$PY" -c '
import msgpack, msgpack_numpy, sys
r = next(iter(msgpack.Unpacker(open(sys.argv[1], "rb"), object_hook=msgpack_numpy.decode, raw=False)))
print(r["img1"], r["img_w"], r["visual_feats"].shape, "visual_feats0" in r)' "$W/one.mp"
	[ "$output" = "COCO_train2014_000000132417 500 (36, 2048) False" ]
}

@test "joins from .npz and .npy files, a BUTD TSV and a stream at once" {
	"$PY" "$REF" write-npz "$W/npz" 2 deflated
	"$PY" "$REF" write-npy "$W/npz" 2
	"$PY" "$REF" write-butd "$W/butd.tsv" 3
	"$BIN/lx-featpack" "$TSV" > "$W/feats.mp"
	"$PY" -c '
import msgpack, sys
for i in ["000000000501", "4002", "000000000701", "COCO_train2014_000000084002", "000000000500", "4000",
          "000000000700"]:
    sys.stdout.buffer.write(msgpack.packb({"img_id": i, "question_id": len(i)}))' > "$W/mixed.mp"
	"$BIN/lx-featpack" --join "$W/npz" "$W/butd.tsv" "$W/feats.mp" < "$W/mixed.mp" > "$W/out.mp"
	run "$PY" "$REF" check-join "$W/out.mp" "$W/mixed.mp" "$W/npz" "$W/butd.tsv" "$TSV"
	[ "$status" -eq 0 ]
	[ "$output" = "ok" ]
}

@test "accepts integer image ids" {
	"$PY" "$REF" write-butd "$W/butd.tsv" 3
	printf '\x82\xa6img_id\xcd\x0f\xa1\xa1n\x01' > "$W/int.mp"
	"$BIN/lx-featpack" --join "$W/butd.tsv" < "$W/int.mp" > "$W/out.mp"
	run "$PY" -c '
import msgpack, msgpack_numpy, sys
r = next(iter(msgpack.Unpacker(open(sys.argv[1], "rb"), object_hook=msgpack_numpy.decode, raw=False)))
print(r["img_id"], r["n"], r["visual_feats"].shape)' "$W/out.mp"
	[ "$output" = "4001 1 (11, 64)" ]
}

# ---- the index ----

@test "--index writes FILE.lxidx and later joins read it" {
	"$BIN/lx-featpack" --join --index "$W/feats.tsv" < "$W/q.mp" > "$W/a.mp"
	[ "$(head -1 "$W/feats.tsv.lxidx")" = "lx-featidx 1" ]
	[ "$(sed -n 3p "$W/feats.tsv.lxidx")" = "$(printf '0\t1\tCOCO_train2014_000000132417')" ]
	[ "$(wc -l < "$W/feats.tsv.lxidx")" -eq 12 ]
	"$BIN/lx-featpack" --join --index "$W/feats.tsv" < "$W/q.mp" > "$W/b.mp"
	cmp "$W/a.mp" "$W/b.mp"
	"$BIN/lx-featpack" --join "$W/feats.tsv" < "$W/q.mp" > "$W/c.mp"
	cmp "$W/a.mp" "$W/c.mp"
}

@test "the index holds the byte offset of every line" {
	"$BIN/lx-featpack" --join --index "$W/feats.tsv" < /dev/null
	run "$PY" -c '
import sys
data = open(sys.argv[1], "rb").read()
starts = [0] + [i + 1 for i, c in enumerate(data) if c == 10][:-1]
rows = [l.split("\t") for l in open(sys.argv[2]).read().splitlines()[2:]]
ok = [int(r[0]) for r in rows] == starts and [int(r[1]) for r in rows] == list(range(1, 11))
ok = ok and [r[2] for r in rows] == [data[s:data.index(b"\t", s)].decode() for s in starts]
print("ok" if ok else "differs")' "$W/feats.tsv" "$W/feats.tsv.lxidx"
	[ "$output" = "ok" ]
}

@test "--strict-index refuses a stale index, naming it, and --reindex rebuilds it" {
	"$BIN/lx-featpack" --join --index "$W/feats.tsv" < /dev/null
	"$PY" "$REF" corrupt "$TSV" "$W/feats.tsv" 1 1 set 334
	touch -d '2020-01-02 03:04:05' "$W/feats.tsv"
	run "$BIN/lx-featpack" --join --index --strict-index "$W/feats.tsv" < "$W/q.mp"
	[ "$status" -eq 3 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "lx-featpack: $W/feats.tsv.lxidx: stale index: made for 3951820 bytes modified at "*", the file now has 3951820 bytes modified at 1577934245.000000000 (rebuild it with --reindex)" ]]
	"$BIN/lx-featpack" --join --index --strict-index --reindex "$W/feats.tsv" < "$W/q.mp" > "$W/out.mp"
	run "$PY" "$REF" check-join "$W/out.mp" "$W/q.mp" "$W/feats.tsv"
	[ "$output" = "ok" ]
	"$BIN/lx-featpack" --join --index --strict-index "$W/feats.tsv" < "$W/q.mp" > "$W/again.mp"
	cmp "$W/out.mp" "$W/again.mp"
}

@test "an index is read rather than rebuilt, and each image is checked against it (--strict-index: status 3)" {
	"$BIN/lx-featpack" --join --index "$W/feats.tsv" < /dev/null
	# swap the ids of lines 1 and 2 in the index, keeping its header (size and mtime still match)
	"$PY" -c '
import sys
rows = open(sys.argv[1]).read().split("\n")
a, b = rows[2].split("\t"), rows[3].split("\t")
a[2], b[2] = b[2], a[2]
rows[2], rows[3] = "\t".join(a), "\t".join(b)
open(sys.argv[1], "w").write("\n".join(rows))' "$W/feats.tsv.lxidx"
	run bash -c '"$1" --join --index --strict-index "$2" < "$3" > /dev/null' _ "$BIN/lx-featpack" "$W/feats.tsv" "$W/q.mp"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-featpack: $W/feats.tsv: line 2 holds img_id COCO_train2014_000000573195, the index says COCO_train2014_000000132417 (stale index?)" ]
}

@test "a stream feature file is indexed by record offsets too" {
	"$BIN/lx-featpack" "$TSV" > "$W/feats.mp"
	"$PY" "$REF" shuffle "$W/q.mp" 5 > "$W/shuf.mp"
	"$BIN/lx-featpack" --join --index --cache 2 "$W/feats.mp" < "$W/shuf.mp" > "$W/out.mp"
	run "$PY" "$REF" check-join "$W/out.mp" "$W/shuf.mp" "$TSV"
	[ "$output" = "ok" ]
	[ "$(sed -n 2p "$W/feats.mp.lxidx" | cut -d' ' -f5-)" = "format stream count 10" ]
	[ "$(sed -n 4p "$W/feats.mp.lxidx" | cut -f1,2)" = "$(printf '297057\t2')" ]
}

@test "refuses to join against a pipe, which cannot be indexed" {
	run bash -c 'cat "$1" | "$2" --join /dev/fd/3 3<&0 < "$3"' _ "$TSV" "$BIN/lx-featpack" "$W/q.mp"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-featpack: /dev/fd/3: cannot seek (Illegal seek): joining needs a regular file" ]
}

# ---- bad input ----

@test "rejects a question whose img_id is not in the file, after writing the ones before it" {
	"$PY" -c '
import msgpack, sys
for i in ["COCO_train2014_000000132417", "COCO_train2014_000000999999"]:
    sys.stdout.buffer.write(msgpack.packb({"question_id": 7, "img_id": i}))' > "$W/q2.mp"
	run bash -c '"$1" --join "$2" < "$3" > "$4"' _ "$BIN/lx-featpack" "$TSV" "$W/q2.mp" "$W/out.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: stdin: record 2 (id 7): img_id COCO_train2014_000000999999 is not in $TSV" ]
	[ "$(records "$W/out.mp")" -eq 1 ]
	run bash -c '"$1" --join "$2" "$3" < "$4" > /dev/null' _ "$BIN/lx-featpack" "$TSV" "$W/empty" "$W/q2.mp"
	[ "$status" -eq 3 ]
	mkdir -p "$W/npz"
	"$PY" "$REF" write-npz "$W/npz" 2 stored
	run bash -c '"$1" --join "$2" "$3" < "$4" > /dev/null' _ "$BIN/lx-featpack" "$TSV" "$W/npz" "$W/q2.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: stdin: record 2 (id 7): img_id COCO_train2014_000000999999 is in none of the 3 feature files" ]
}

@test "rejects a truncated line, after writing the images before it" {
	head -c 1000000 "$TSV" > "$W/trunc.tsv"
	run bash -c '"$1" "$2" > "$3"' _ "$BIN/lx-featpack" "$W/trunc.tsv" "$W/out.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/trunc.tsv: line 3: truncated (the file ends inside the line)" ]
	[ "$(records "$W/out.mp")" -eq 2 ]
}

@test "refuses to index a truncated file" {
	head -c 1000000 "$TSV" > "$W/trunc.tsv"
	run "$BIN/lx-featpack" --join "$W/trunc.tsv" < "$W/q.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/trunc.tsv: line 3: truncated (the file ends inside the line)" ]
}

@test "rejects bad base64, naming the file, line, image, field and character" {
	"$PY" "$REF" corrupt "$TSV" "$W/bad.tsv" 3 8 damage 17
	run bash -c '"$1" "$2" > "$3"' _ "$BIN/lx-featpack" "$W/bad.tsv" "$W/out.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/bad.tsv: line 3 (img_id COCO_train2014_000000578174): field boxes is not valid base64 (character '*' at offset 17)" ]
	[ "$(records "$W/out.mp")" -eq 2 ]
}

@test "rejects bad base64 met while joining, naming the record too" {
	"$PY" "$REF" corrupt "$TSV" "$W/bad.tsv" 3 9 damage 4000
	run bash -c '"$1" --join "$2" < "$3" > "$4"' _ "$BIN/lx-featpack" "$W/bad.tsv" "$W/q.mp" "$W/out.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: stdin: record 5 (id 578174000): $W/bad.tsv: line 3 (img_id COCO_train2014_000000578174): field features is not valid base64 (character '*' at offset 4000)" ]
	[ "$(records "$W/out.mp")" -eq 4 ]
}

@test "rejects a stream feature file that ends inside a record" {
	"$BIN/lx-featpack" "$TSV" > "$W/feats.mp"
	head -c 700000 "$W/feats.mp" > "$W/trunc.mp"
	run bash -c '"$1" "$2" > "$3"' _ "$BIN/lx-featpack" "$W/trunc.mp" "$W/out.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/trunc.mp: record 3: the stream ends inside the record" ]
	[ "$(records "$W/out.mp")" -eq 2 ]
	run "$BIN/lx-featpack" --join "$W/trunc.mp" < "$W/q.mp"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/trunc.mp: record 3: the stream ends inside the record" ]
}

@test "rejects a num_boxes that disagrees with the arrays" {
	"$PY" "$REF" corrupt "$TSV" "$W/bad.tsv" 2 7 set 35
	run bash -c '"$1" "$2" > /dev/null' _ "$BIN/lx-featpack" "$W/bad.tsv"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/bad.tsv: line 2 (img_id COCO_train2014_000000573195): field boxes holds 576 bytes, num_boxes 35 needs 560" ]
}

@test "rejects features that are not whole rows for num_boxes" {
	"$PY" "$REF" corrupt "$TSV" "$W/bad.tsv" 1 9 set "AAAAAAAA"
	run "$BIN/lx-featpack" "$W/bad.tsv"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/bad.tsv: line 1 (img_id COCO_train2014_000000132417): field features holds 6 bytes, not a whole number of float32 rows for num_boxes 36" ]
}

@test "rejects boxes outside the image" {
	"$PY" "$REF" corrupt "$TSV" "$W/bad.tsv" 3 2 set 100
	run bash -c '"$1" "$2" > /dev/null' _ "$BIN/lx-featpack" "$W/bad.tsv"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/bad.tsv: line 3 (img_id COCO_train2014_000000578174): box 0 x2 is 416.304932 pixels, outside [0, 1] after normalisation (image 100x394)" ]
}

@test "rejects a line with the wrong number of fields" {
	"$PY" "$REF" corrupt "$TSV" "$W/bad.tsv" 4 2 set "$(printf '1\t2')"
	run bash -c '"$1" "$2" > /dev/null' _ "$BIN/lx-featpack" "$W/bad.tsv"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/bad.tsv: line 4: 11 tab-separated fields, expected 10 (obj36 TSV)" ]
}

@test "rejects an image height that is not a number" {
	"$PY" "$REF" corrupt "$TSV" "$W/bad.tsv" 1 1 set "33x"
	run "$BIN/lx-featpack" "$W/bad.tsv"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/bad.tsv: line 1 (img_id COCO_train2014_000000132417): field img_h is \"33x\", expected an integer from 1 to 1000000" ]
}

@test "rejects an img_id found in two files" {
	run "$BIN/lx-featpack" --join "$TSV" "$W/feats.tsv" < /dev/null
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/feats.tsv: line 1: img_id COCO_train2014_000000132417 appears twice (first at $TSV: line 1)" ]
}

@test "rejects a .npz whose num_bbox disagrees with x" {
	"$PY" -c '
import numpy as np, sys
np.savez(sys.argv[1], x=np.zeros((3, 8), np.float32), bbox=np.ones((3, 4), np.float32), num_bbox=4,
         image_h=10, image_w=10)' "$W/img.npz"
	run "$BIN/lx-featpack" "$W/img.npz"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/img.npz: x.npy: shape [3,...], expected [4,F] (num_bbox 4)" ]
}

@test "rejects a .npz without bbox and a corrupt deflated member" {
	"$PY" -c '
import numpy as np, sys
np.savez_compressed(sys.argv[1], x=np.zeros((3, 8), np.float32), num_bbox=3, image_h=10, image_w=10)' "$W/img.npz"
	run "$BIN/lx-featpack" "$W/img.npz"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/img.npz: no member bbox.npy (expected x, bbox, num_bbox, image_h, image_w)" ]
	"$PY" "$REF" write-npz "$W/d" 1 deflated
	"$PY" -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[200] ^= 0xff; open(sys.argv[1], "wb").write(b)' "$W/d/000000000500.npz"
	run "$BIN/lx-featpack" "$W/d/000000000500.npz"
	[ "$status" -eq 1 ]
	[[ "$output" == "lx-featpack: $W/d/000000000500.npz: member x.npy: "* ]]
}

@test "rejects a file that is no feature layout" {
	printf 'a\tb\tc\n' > "$W/x.tsv"
	run "$BIN/lx-featpack" "$W/x.tsv"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-featpack: $W/x.tsv: line 1 has 3 tab-separated fields, expected 10 (obj36 TSV) or 6 (BUTD TSV); not a .npz or a stream either" ]
}

@test "a missing feature file is status 3" {
	run "$BIN/lx-featpack" "$W/none.tsv"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-featpack: $W/none.tsv: No such file or directory" ]
}

# ---- the command line ----

@test "-h prints usage on stdout and exits 0" {
	run "$BIN/lx-featpack" -h
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "usage: lx-featpack [options] FILE..."* ]]
}

@test "bad usage exits 2" {
	run "$BIN/lx-featpack"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-featpack: no feature file given" ]
	run "$BIN/lx-featpack" --max-boxes 0 "$TSV"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-featpack: --max-boxes takes a whole number from 1 to 1000000, not '0'" ]
	[ "${lines[1]}" = "usage: lx-featpack [options] FILE...            one record per image, on stdout" ]
	run "$BIN/lx-featpack" --reindex "$TSV"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-featpack: --reindex needs --index" ]
	# -m is the model in every other tool: here it is refused, with the option meant
	run "$BIN/lx-featpack" -m 36 "$TSV"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-featpack: -m is the model in the lx tools; the number of boxes is --max-boxes N" ]
}

@test "a full disk is an error, status 4" {
	run bash -c '"$1" "$2" > /dev/full' _ "$BIN/lx-featpack" "$TSV"
	[ "$status" -eq 4 ]
	[ "$output" = "lx-featpack: stdout: write failed: No space left on device" ]
}

@test "--progress reports images on stderr, not stdout" {
	run bash -c '"$1" --progress "$2" 2>&1 >/dev/null' _ "$BIN/lx-featpack" "$TSV"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^"lx-featpack: 10 images in 0:0"[0-9]", "[0-9.]+" images/s"$ ]]
}
