#!/usr/bin/env bats
# Faults, for every tool: bad input (truncated, random bytes, wrong msgpack types, huge declared sizes, NaN
# and infinity, empty input, missing files, directories), SIGINT/SIGTERM, a reader that goes away, a full
# disk, and --keep-going with error records flowing down the pipeline. Statuses: lx.h and every man page.

load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	FAULTS="$PY $TOP/tests/py/faults.py"
	TSV="$FIX/train2014_obj36_sample.tsv"
	SEP=--separate-stderr
}

# Records in a stream file, via Python's msgpack.
count() {
	$FAULTS show "$1" | wc -l
}

# The tool with its stdout in $T/out.mp, for `run`.
to_out() {
	"$@" > "$T/out.mp"
}

# Three good records for lx-encode (tiny model), then with record 3 made bad in the way $1 says.
encode_inputs() {
	$FAULTS records "$FIX/tiny" 3 3 "$1" > "$T/in.mp"
}

# lx-encode's records for lx-head: three good ones.
encoded() {
	$FAULTS records "$FIX/tiny" 3 > "$T/raw.mp"
	"$BIN/lx-encode" -m "$FIX/tiny" < "$T/raw.mp" > "$T/enc.mp"
}

# Question records as lx-tokenize writes them (Python's msgpack).
questions() {
	$PY "$TOP/tests/py/featref.py" questions "$FIX/questions.jsonl" > "$T/q.mp"
}

# ---- lx-tokenize ----

@test "lx-tokenize: empty input is an empty stream with status 0" {
	run $SEP to_out "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" < /dev/null
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ ! -s "$T/out.mp" ]
}

@test "lx-tokenize: a missing input file is status 3" {
	run $SEP to_out "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" "$T/none.txt"
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-tokenize: $T/none.txt: No such file or directory" ]
}

@test "lx-tokenize: a directory given as input is status 3" {
	run $SEP to_out "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" "$T"
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-tokenize: $T: Is a directory" ]
}

@test "lx-tokenize: a directory given as vocabulary is status 3" {
	run $SEP to_out "$BIN/lx-tokenize" --vocab "$T" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-tokenize: $T: Is a directory" ]
}

@test "lx-tokenize and lx-head: an endless file (/dev/zero) as vocabulary or labels is refused, status 3" {
	run $SEP to_out "$BIN/lx-tokenize" --vocab /dev/zero < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-tokenize: /dev/zero: larger than 268435456 bytes, too large for a vocabulary" ]
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" --labels /dev/zero < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-head: /dev/zero: larger than 268435456 bytes, too large for a list of names" ]
}

@test "lx-tokenize: random bytes after two lines stop at line 3, both records written" {
	{ printf 'what is it\nhow many\n'; $PY -c 'import sys; sys.stdout.buffer.write(bytes(range(128, 256)))'; } > "$T/in.txt"
	run $SEP to_out "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" < "$T/in.txt"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-tokenize: stdin: line 3: invalid UTF-8 at byte 1 (0x80); --replace-invalid reads it as U+FFFD" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
}

@test "lx-tokenize: a truncated JSON line stops the run with the records before it written" {
	{ head -n 2 "$FIX/questions.jsonl"; printf '{"question_id": 3, "sent": "cut'; } > "$T/in.jsonl"
	run $SEP to_out "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --jsonl < "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-tokenize: stdin: line 3: not JSON (premature end of input near '\"cut')" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
}

# ---- lx-featpack ----

@test "lx-featpack: a missing feature file is status 3" {
	run $SEP to_out "$BIN/lx-featpack" --join "$T/none.tsv" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-featpack: $T/none.tsv: No such file or directory" ]
}

@test "lx-featpack: a directory without features is status 3" {
	run $SEP to_out "$BIN/lx-featpack" --join "$T" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-featpack: $T: a directory without .npz or .npy files" ]
}

@test "lx-featpack: empty input on stdin is an empty stream with status 0" {
	run $SEP to_out "$BIN/lx-featpack" --join "$TSV" < /dev/null
	[ "$status" -eq 0 ]
	[ ! -s "$T/out.mp" ]
}

@test "lx-featpack: an img_id of the wrong msgpack type is refused after the records before it" {
	questions
	$PY - "$T/q.mp" > "$T/in.mp" <<'PY'
import sys, msgpack
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))[:4]
recs[2]["img_id"] = 3.5
sys.stdout.buffer.write(b"".join(msgpack.packb(r) for r in recs))
PY
	run $SEP to_out "$BIN/lx-featpack" --join "$TSV" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-featpack: stdin: record 3 (id 573195000): field img_id is neither a string nor a non-negative integer" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
}

@test "lx-featpack: a stream cut inside record 3, a byte that is no msgpack, a 4 GiB string: status 1" {
	questions
	head -c 200 "$T/q.mp" > "$T/in.mp"
	n=$($PY -c 'import sys, msgpack; print(len(list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))))' "$T/q.mp")
	$PY -c 'import sys, msgpack
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))[:2]
sys.stdout.buffer.write(b"".join(msgpack.packb(r) for r in recs))' "$T/q.mp" > "$T/two.mp"
	head -c $(( $(stat -c %s "$T/two.mp") + 20 )) "$T/q.mp" > "$T/cut.mp"
	run $SEP to_out "$BIN/lx-featpack" --join "$TSV" < "$T/cut.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-featpack: stdin: record 3: the stream ends inside the record" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
	{ cat "$T/two.mp"; printf '\xc1'; } > "$T/c1.mp"
	run $SEP to_out "$BIN/lx-featpack" --join "$TSV" < "$T/c1.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-featpack: stdin: record 3: not valid msgpack" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
	{ cat "$T/two.mp"; printf '\x81\xa6img_id\xdb\xff\xff\xff\xff'; } > "$T/big.mp"
	run $SEP to_out "$BIN/lx-featpack" --join "$TSV" < "$T/big.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-featpack: stdin: record 3: larger than 268435456 bytes" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
}

@test "lx-featpack: a feature stream declaring a map of four billion entries is refused (fuzz_tsv regression)" {
	printf '\x81\xa6img_id\xa1a\xdf\xff\xff\xff\xff\x00\x00\x00' > "$T/huge.mp"
	printf '\x81\xa6img_id\xa1a' > "$T/q.mp"
	run $SEP to_out "$BIN/lx-featpack" --join "$T/huge.mp" < "$T/q.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-featpack: $T/huge.mp: record 2: the stream ends inside the record" ]
}

@test "lx-featpack: a .npz member declaring a gigabyte past the end of the file is refused (fuzz_npz regression)" {
	$PY - "$T/img.npz" <<'PY'
import io, struct, sys, numpy as np
f = io.BytesIO()
np.savez_compressed(f, x=np.ones((2, 3), np.float32), bbox=np.array([[0, 0, 4, 4]] * 2, np.float32),
                    num_bbox=2, image_h=8, image_w=8)
b = bytearray(f.getvalue())
cd = b.rindex(b"PK\x01\x02bbox"[:4], 0, len(b))
i = b.index(b"PK\x01\x02")
while i >= 0:  # the central directory entry of bbox.npy: compressed size 1,000,000,000
    n = struct.unpack_from("<H", b, i + 28)[0]
    if b[i + 46:i + 46 + n] == b"bbox.npy":
        struct.pack_into("<I", b, i + 20, 1000000000)
    i = b.find(b"PK\x01\x02", i + 4)
open(sys.argv[1], "wb").write(b)
PY
	run $SEP to_out "$BIN/lx-featpack" "$T/img.npz"
	[ "$status" -eq 1 ]
	[[ "$stderr" =~ ^"lx-featpack: $T/img.npz: member bbox.npy: 1000000000 bytes at byte "[0-9]+", past the end of the file ("[0-9]+" bytes)"$ ]]
}

@test "lx-featpack: a .npy shape whose element count overflows 64 bits is refused (UBSan regression)" {
	$PY - "$T/ovf.npz" <<'PY'
import io, sys, zipfile, numpy as np
def npy(a):
    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()
hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648, 2147483648, 4), }"
hdr += b" " * (118 - len(hdr)) + b"\n"
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("x.npy", b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr)  # 2^64 elements, 0 bytes
    for k, v in [("bbox", np.array([[0, 0, 4, 4]], np.float32)), ("num_bbox", np.array(1)),
                 ("image_h", np.array(8)), ("image_w", np.array(8))]:
        z.writestr(k + ".npy", npy(v))
PY
	run $SEP to_out "$BIN/lx-featpack" "$T/ovf.npz"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-featpack: $T/ovf.npz: x.npy: shape too large in the .npy header (more than 2^40 elements)" ]
}

@test "lx-featpack: NaN boxes and infinite features are refused, naming the image" {
	$PY - "$T" <<'PY'
import sys, msgpack, msgpack_numpy, numpy as np
def rec(i, boxes, feats):
    return msgpack.packb({"img_id": i, "img_h": 20, "img_w": 20, "boxes": np.array(boxes, np.float32),
                          "visual_feats": np.array(feats, np.float32)}, default=msgpack_numpy.encode)
good = rec("a", [[1, 1, 10, 10]], [[1, 2, 3]])
open(sys.argv[1] + "/nan.mp", "wb").write(good + rec("b", [[np.nan, 1, 10, 10]], [[1, 2, 3]]))
open(sys.argv[1] + "/inf.mp", "wb").write(good + rec("c", [[1, 1, 10, 10]], [[1, np.inf, 3]]))
PY
	run $SEP to_out "$BIN/lx-featpack" "$T/nan.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-featpack: $T/nan.mp: record 2 (img_id b): box 0 x1 is nan pixels, outside [0, 1] after normalisation (image 20x20)" ]
	[ "$(count "$T/out.mp")" -eq 1 ]
	run $SEP to_out "$BIN/lx-featpack" "$T/inf.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-featpack: $T/inf.mp: record 2 (img_id c): feature 1 of box 0 is inf, expected a finite value" ]
	[ "$(count "$T/out.mp")" -eq 1 ]
}

@test "lx-featpack: an index entry pointing past the end of the feature file is refused with --strict-index (status 3), else rebuilt" {
	cp "$TSV" "$T/f.tsv"
	questions
	"$BIN/lx-featpack" --join --index "$T/f.tsv" < "$T/q.mp" > /dev/null
	$PY - "$T/f.tsv.lxidx" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
off, line, img = lines[3].split("\t")
lines[3] = "\t".join(["99999999999", line, img])
open(sys.argv[1], "w").write("\n".join(lines))
PY
	run $SEP to_out "$BIN/lx-featpack" --join --index --strict-index "$T/f.tsv" < "$T/q.mp"
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-featpack: $T/f.tsv.lxidx: line 4: offset 99999999999 or line 2 outside the file ($(stat -c %s "$T/f.tsv") bytes)" ]
	run $SEP to_out "$BIN/lx-featpack" --join --index "$T/f.tsv" < "$T/q.mp"
	[ "$status" -eq 0 ]
	[ "$stderr" = "lx-featpack: $T/f.tsv.lxidx: line 4: offset 99999999999 or line 2 outside the file ($(stat -c %s "$T/f.tsv") bytes); rebuilt and written back" ]
}

# ---- lx-encode ----

bad_encode() {
	encode_inputs "$1"
	run $SEP to_out "$BIN/lx-encode" -m "$FIX/tiny" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "$2" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
}

@test "lx-encode: NaN among the features is refused after the records before it" {
	bad_encode nan-feats "lx-encode: stdin: record 3 (id 1003): field visual_feats: non-finite value at box 1, feature 2"
}

@test "lx-encode: infinity among the boxes is refused after the records before it" {
	bad_encode inf-pos "lx-encode: stdin: record 3 (id 1003): field visual_pos: non-finite value at box 0"
}

@test "lx-encode: input_ids of the wrong msgpack type (a string) is refused" {
	bad_encode ids-string "lx-encode: stdin: record 3 (id 1003): field input_ids: not a tensor (expected a msgpack-numpy map with nd true)"
}

@test "lx-encode: a tensor declaring 2^62 elements is refused without allocating" {
	bad_encode huge-shape "lx-encode: stdin: record 3 (id 1003): field visual_feats: tensor shape too large"
}

@test "lx-encode: a value that is not a map is refused" {
	bad_encode not-map "lx-encode: stdin: record 3: a msgpack array, expected a map"
}

@test "lx-encode: a truncated stream, a byte that is no msgpack and a 4 GiB bin end the run (status 1)" {
	$FAULTS records "$FIX/tiny" 2 > "$T/two.mp"
	$FAULTS records "$FIX/tiny" 3 > "$T/three.mp"
	head -c $(( $(stat -c %s "$T/three.mp") - 10 )) "$T/three.mp" > "$T/cut.mp"
	run $SEP to_out "$BIN/lx-encode" -m "$FIX/tiny" < "$T/cut.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-encode: stdin: record 3: the stream ends inside the record" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
	{ cat "$T/two.mp"; printf '\xc1'; } > "$T/c1.mp"
	run $SEP to_out "$BIN/lx-encode" -m "$FIX/tiny" < "$T/c1.mp"
	[ "$stderr" = "lx-encode: stdin: record 3: not valid msgpack" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
	{ cat "$T/two.mp"; printf '\x81\xa1a\xc6\xff\xff\xff\xff'; } > "$T/big.mp"
	run $SEP to_out "$BIN/lx-encode" -m "$FIX/tiny" < "$T/big.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-encode: stdin: record 3: larger than 128000000 bytes (--max-record)" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
}

@test "lx-encode: empty input is an empty stream with status 0" {
	run $SEP to_out "$BIN/lx-encode" -m "$FIX/tiny" < /dev/null
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ ! -s "$T/out.mp" ]
}

@test "lx-encode: a missing model, a file for a model, a directory for config.json, a cut safetensors: status 3" {
	run $SEP to_out "$BIN/lx-encode" -m "$T/none" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/none/config.json: No such file or directory" ]
	touch "$T/file"
	run $SEP to_out "$BIN/lx-encode" -m "$T/file" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/file/config.json: Not a directory" ]
	mkdir -p "$T/m/config.json"
	run $SEP to_out "$BIN/lx-encode" -m "$T/m" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/m/config.json: Is a directory" ]
	mkdir -p "$T/cut"
	cp "$FIX/tiny/config.json" "$T/cut/"
	head -c 1000 "$FIX/tiny/model.safetensors" > "$T/cut/model.safetensors"
	run $SEP to_out "$BIN/lx-encode" -m "$T/cut" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-encode: $T/cut/model.safetensors: header of 21488 bytes does not fit in the file (1000 bytes)" ]
}

# ---- lx-head ----

@test "lx-head: NaN and infinity in lx-encode's outputs are refused, not turned into null scores" {
	encoded
	$PY - "$T/enc.mp" > "$T/in.mp" <<'PY'
import sys, msgpack, msgpack_numpy, numpy as np
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), object_hook=msgpack_numpy.decode, raw=False))
recs[2]["pooled_output"] = recs[2]["pooled_output"].copy()
recs[2]["pooled_output"][3] = np.nan
sys.stdout.buffer.write(b"".join(msgpack.packb(r, default=msgpack_numpy.encode) for r in recs))
PY
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-head: stdin: record 3 (id 1003): field pooled_output: non-finite value (nan) at element 3" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
}

@test "lx-head: a record without lx-encode's outputs, and one of the wrong type, are refused" {
	encoded
	{ head -c $(stat -c %s "$T/enc.mp") "$T/enc.mp"; $FAULTS records "$FIX/tiny" 1; } > "$T/in.mp"
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-head: stdin: record 4 (id 1001): field pooled_output is missing (the qa and match heads need lx-encode's pooled_output)" ]
	[ "$(count "$T/out.mp")" -eq 3 ]
	{ cat "$T/enc.mp"; printf '\x81\xadpooled_output\xa3abc'; } > "$T/in.mp"
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-head: stdin: record 4: field pooled_output: not a tensor (expected a msgpack-numpy map with nd true)" ]
	[ "$(count "$T/out.mp")" -eq 3 ]
}

@test "lx-head: a truncated stream ends the run with the records before it written; empty input is status 0" {
	encoded
	head -c $(( $(stat -c %s "$T/enc.mp") - 7 )) "$T/enc.mp" > "$T/cut.mp"
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" < "$T/cut.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-head: stdin: record 3: the stream ends inside the record" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" < /dev/null
	[ "$status" -eq 0 ]
	[ ! -s "$T/out.mp" ]
}

@test "lx-head: a missing label file and a directory given as one are status 3" {
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" --labels "$T/none.json" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-head: $T/none.json: No such file or directory" ]
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" --labels "$T" < /dev/null
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-head: $T: Is a directory" ]
}

# ---- lx-convert ----

@test "lx-convert: a missing checkpoint, random bytes, a directory without one: status 3" {
	run $SEP "$BIN/lx-convert" "$T/none.bin" "$T/out"
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-convert: $T/none.bin: No such file or directory" ]
	$PY -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 4)' > "$T/rnd.bin"
	run $SEP "$BIN/lx-convert" "$T/rnd.bin" "$T/out"
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-convert: $T/rnd.bin: not a PyTorch checkpoint (neither a zip archive nor the legacy torch.save layout)" ]
	mkdir "$T/empty"
	run $SEP "$BIN/lx-convert" "$T/empty" "$T/out"
	[ "$status" -eq 3 ]
	[ "$stderr" = "lx-convert: $T/empty: no pytorch_model.bin in this directory" ]
	[ ! -e "$T/out" ]
}

# ---- signals: stop after the record in hand, every finished record written, status 5 ----

@test "lx-tokenize: SIGTERM while waiting on a FIFO: status 5, the lines read are all written" {
	head -n 3 "$FIX/questions.jsonl" > "$T/in.jsonl"
	run $SEP $FAULTS signal TERM "$T/out.mp" "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --jsonl < "$T/in.jsonl"
	[ "$output" = 5 ]
	[ "$stderr" = "lx-tokenize: interrupted after 3 lines, all written" ]
	[ "$(count "$T/out.mp")" -eq 3 ]
}

@test "lx-featpack: SIGINT while waiting on a FIFO: status 5, the records read are all written" {
	questions
	$PY -c 'import sys, msgpack
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))[:4]
sys.stdout.buffer.write(b"".join(msgpack.packb(r) for r in recs))' "$T/q.mp" > "$T/in.mp"
	run $SEP $FAULTS signal INT "$T/out.mp" "$BIN/lx-featpack" --join "$TSV" < "$T/in.mp"
	[ "$output" = 5 ]
	[ "$stderr" = "lx-featpack: interrupted after 4 records, all written" ]
	[ "$(count "$T/out.mp")" -eq 4 ]
}

@test "lx-encode: SIGINT while waiting on a FIFO in the middle of a batch: status 5, the records read are all encoded" {
	$FAULTS records "$FIX/tiny" 3 > "$T/in.mp"
	run $SEP $FAULTS signal INT "$T/out.mp" "$BIN/lx-encode" -m "$FIX/tiny" --threads 2 < "$T/in.mp"
	[ "$output" = 5 ]
	[ "$stderr" = "lx-encode: interrupted after 3 records, all written" ]
	[ "$($FAULTS show "$T/out.mp")" = "$(printf '1001 - 1\n1002 - 1\n1003 - 1')" ]
}

@test "lx-head: SIGTERM while waiting on a FIFO: status 5, the records read are all written" {
	encoded
	run $SEP $FAULTS signal TERM "$T/out.mp" "$BIN/lx-head" -m "$FIX/tiny" < "$T/enc.mp"
	[ "$output" = 5 ]
	[ "$stderr" = "lx-head: interrupted after 3 records, all written" ]
	[ "$(count "$T/out.mp")" -eq 3 ]
}

# ---- a reader that goes away: the tool dies of SIGPIPE, quietly ----

# Runs "$@" into head -c 100; prints the tool's exit status; its stderr goes to $T/err.
into_head() {
	"$@" 2> "$T/err" | head -c 100 > /dev/null
	echo "${PIPESTATUS[0]}"
}

@test "every tool killed by SIGPIPE, with nothing on stderr, when its reader stops early (| head -c 100)" {
	for i in $(seq 300); do cat "$FIX/questions.jsonl"; done > "$T/many.jsonl"
	[ "$(into_head "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --jsonl < "$T/many.jsonl")" -eq 141 ]
	[ ! -s "$T/err" ]
	"$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --jsonl < "$FIX/questions.jsonl" > "$T/q.mp"
	[ "$(into_head "$BIN/lx-featpack" --join "$TSV" < "$T/q.mp")" -eq 141 ]
	[ ! -s "$T/err" ]
	$FAULTS records "$FIX/tiny" 200 > "$T/in.mp"
	[ "$(into_head "$BIN/lx-encode" -m "$FIX/tiny" < "$T/in.mp")" -eq 141 ]
	[ ! -s "$T/err" ]
	"$BIN/lx-encode" -m "$FIX/tiny" < "$T/in.mp" > "$T/enc.mp"
	[ "$(into_head "$BIN/lx-head" -m "$FIX/tiny" < "$T/enc.mp")" -eq 141 ]
	[ ! -s "$T/err" ]
}

# ---- a full disk: status 4 ----

@test "every tool writing to /dev/full stops with status 4 and says so" {
	run $SEP bash -c '"$1" --vocab "$2" --jsonl < "$3" > /dev/full' _ "$BIN/lx-tokenize" "$FIX/vocab.txt" "$FIX/questions.jsonl"
	[ "$status" -eq 4 ]
	[ "$stderr" = "lx-tokenize: stdout: write failed: No space left on device" ]
	"$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --jsonl < "$FIX/questions.jsonl" > "$T/q.mp"
	run $SEP bash -c '"$1" --join "$2" < "$3" > /dev/full' _ "$BIN/lx-featpack" "$TSV" "$T/q.mp"
	[ "$status" -eq 4 ]
	[ "$stderr" = "lx-featpack: stdout: write failed: No space left on device" ]
	$FAULTS records "$FIX/tiny" 3 > "$T/in.mp"
	run $SEP bash -c '"$1" -m "$2" < "$3" > /dev/full' _ "$BIN/lx-encode" "$FIX/tiny" "$T/in.mp"
	[ "$status" -eq 4 ]
	[ "$stderr" = "lx-encode: stdout: write failed: No space left on device" ]
	"$BIN/lx-encode" -m "$FIX/tiny" < "$T/in.mp" > "$T/enc.mp"
	run $SEP bash -c '"$1" -m "$2" < "$3" > /dev/full' _ "$BIN/lx-head" "$FIX/tiny" "$T/enc.mp"
	[ "$status" -eq 4 ]
	[ "$stderr" = "lx-head: stdout: write failed: No space left on device" ]
	run $SEP bash -c '"$1" -m "$2" --json < "$3" > /dev/full' _ "$BIN/lx-head" "$FIX/tiny" "$T/enc.mp"
	[ "$status" -eq 4 ]
	[ "$stderr" = "lx-head: stdout: write failed: No space left on device" ]
}

# ---- --keep-going: a bad record becomes an error record; records carrying error pass through ----

@test "lx-tokenize --keep-going: bad lines become error records between the good ones" {
	printf '%s\n' '{"question_id": 1, "sent": "what is it?"}' 'not json' '{"question_id": 3, "sent": 5}' \
		'{"question_id": 4, "sent": "and this?"}' > "$T/in.jsonl"
	run $SEP to_out "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --jsonl --keep-going < "$T/in.jsonl"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-tokenize: stdin: line 2: not JSON (invalid token near 'not')
lx-tokenize: stdin: line 3: field sent is a number, expected a string
lx-tokenize: 2 of 4 lines were bad, written with an error field" ]
	$PY - "$T/out.mp" <<'PY'
import sys, msgpack
r = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))
assert len(r) == 4, r
assert r[0]["question_id"] == 1 and list(r[0]["input_ids"]) != [] and "error" not in r[0]
assert r[1] == {"error": "lx-tokenize: stdin: line 2: not JSON (invalid token near 'not')"}, r[1]
assert r[2] == {"question_id": 3, "sent": 5, "error": "lx-tokenize: stdin: line 3: field sent is a number, expected a string"}, r[2]
assert r[3]["question_id"] == 4 and "input_ids" in r[3] and "error" not in r[3]
PY
}

@test "lx-encode --keep-going: a bad record keeps its fields, gains error, and the records after it are encoded" {
	$FAULTS records "$FIX/tiny" 5 3 nan-feats > "$T/in.mp"
	run $SEP to_out "$BIN/lx-encode" -m "$FIX/tiny" --keep-going --batch 2 < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-encode: stdin: record 3 (id 1003): field visual_feats: non-finite value at box 1, feature 2
lx-encode: 1 of 5 records were bad, written with an error field" ]
	[ "$($FAULTS show "$T/out.mp")" = "1001 - 1
1002 - 1
1003 lx-encode: stdin: record 3 (id 1003): field visual_feats: non-finite value at box 1, feature 2 0
1004 - 1
1005 - 1" ]
	$PY - "$T/in.mp" "$T/out.mp" <<'PY'
import sys, msgpack, msgpack_numpy, numpy as np
load = lambda p: list(msgpack.Unpacker(open(p, "rb"), object_hook=msgpack_numpy.decode, raw=False))
i, o = load(sys.argv[1]), load(sys.argv[2])
assert list(o[2]) == list(i[2]) + ["error"], list(o[2])
assert np.array_equal(o[2]["visual_feats"], i[2]["visual_feats"], equal_nan=True)
PY
}

@test "lx-encode --keep-going: a value that is not a map becomes an error record holding only error" {
	$FAULTS records "$FIX/tiny" 3 2 not-map > "$T/in.mp"
	run $SEP to_out "$BIN/lx-encode" -m "$FIX/tiny" --keep-going < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$($FAULTS show "$T/out.mp")" = "1001 - 1
- lx-encode: stdin: record 2: a msgpack array, expected a map 0
1003 - 1" ]
}

@test "lx-encode --keep-going: a truncated stream still ends the run (no record to resynchronise on)" {
	$FAULTS records "$FIX/tiny" 3 > "$T/three.mp"
	head -c $(( $(stat -c %s "$T/three.mp") - 10 )) "$T/three.mp" > "$T/cut.mp"
	run $SEP to_out "$BIN/lx-encode" -m "$FIX/tiny" --keep-going < "$T/cut.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-encode: stdin: record 3: the stream ends inside the record" ]
	[ "$(count "$T/out.mp")" -eq 2 ]
}

@test "lx-head --keep-going: a bad record is written with its fields as read and error, no head outputs" {
	encoded
	$PY - "$T/enc.mp" > "$T/in.mp" <<'PY'
import sys, msgpack, msgpack_numpy
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), object_hook=msgpack_numpy.decode, raw=False))
recs[1]["ans"] = "seven"  # a label of the wrong type: found after the heads ran
sys.stdout.buffer.write(b"".join(msgpack.packb(r, default=msgpack_numpy.encode) for r in recs))
PY
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" --keep-going < "$T/in.mp"
	[ "$status" -eq 1 ]
	$PY - "$T/in.mp" "$T/out.mp" "$stderr" <<'PY'
import sys, msgpack, msgpack_numpy
load = lambda p: list(msgpack.Unpacker(open(p, "rb"), object_hook=msgpack_numpy.decode, raw=False))
i, o = load(sys.argv[1]), load(sys.argv[2])
assert len(o) == 3
assert list(o[1]) == list(i[1]) + ["error"], list(o[1])
err = sys.argv[3].splitlines()
assert err[0] == o[1]["error"] and err[0].startswith("lx-head: stdin: record 2 (id 1002): field ans"), err
assert err[1] == "lx-head: 1 of 3 records were bad, written with an error field", err
assert "answers" in o[0] and "answers" in o[2] and "error" not in o[0] and "error" not in o[2]
PY
}

@test "lx-head --json-tensors: a tensor that cannot be shown leaves no half-written line; --keep-going goes on" {
	encoded
	$PY - "$T/enc.mp" > "$T/in.mp" <<'PY'
import sys, msgpack, msgpack_numpy, numpy as np
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), object_hook=msgpack_numpy.decode, raw=False))
recs[1]["big"] = np.array([2 ** 40, 1], np.int64)  # beyond int32
sys.stdout.buffer.write(b"".join(msgpack.packb(r, default=msgpack_numpy.encode) for r in recs))
PY
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" --json-tensors < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-head: stdin: record 2 (id 1002): field big: value 1099511627776 at index 0 is out of the int32 range" ]
	$PY -c 'import json, sys; l = [json.loads(x) for x in open(sys.argv[1])]; assert [r["question_id"] for r in l] == [1001], l' "$T/out.mp"
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" --json-tensors --keep-going < "$T/in.mp"
	[ "$status" -eq 1 ]
	$PY - "$T/out.mp" <<'PY'
import json, sys
l = [json.loads(x) for x in open(sys.argv[1])]
assert [r["question_id"] for r in l] == [1001, 1002, 1003]
assert l[1] == {"question_id": 1002, "img_id": "img2",
                "error": "lx-head: stdin: record 2 (id 1002): field big: value 1099511627776 at index 0 is out of the int32 range"}, l[1]
assert "answers" in l[2] and "input_ids" in l[2]
PY
}

@test "lx-featpack --keep-going: an image missing from the features becomes an error record" {
	questions
	$PY - "$T/q.mp" > "$T/in.mp" <<'PY'
import sys, msgpack
recs = list(msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False))[:3]
recs[1]["img_id"] = "COCO_nowhere"
sys.stdout.buffer.write(b"".join(msgpack.packb(r) for r in recs))
PY
	run $SEP to_out "$BIN/lx-featpack" --join "$TSV" --keep-going < "$T/in.mp"
	[ "$status" -eq 1 ]
	[ "$stderr" = "lx-featpack: stdin: record 2 (id 132417001): img_id COCO_nowhere is not in $TSV
lx-featpack: 1 of 3 records were bad, written with an error field" ]
	$PY - "$T/in.mp" "$T/out.mp" "${stderr%%$'\n'*}" <<'PY'
import sys, msgpack
load = lambda p: list(msgpack.Unpacker(open(p, "rb"), raw=False))
i, o = load(sys.argv[1]), load(sys.argv[2])
assert len(o) == 3 and "visual_feats" in o[0] and "visual_feats" in o[2]
assert o[1] == dict(i[1], error=sys.argv[3]), o[1]
PY
}

@test "an error record from lx-tokenize flows untouched through lx-featpack, lx-encode and lx-head" {
	{ head -n 2 "$FIX/questions.jsonl"; printf '{"question_id": 7, "img_id": "x"}\n'; sed -n 3,4p "$FIX/questions.jsonl"; } > "$T/in.jsonl"
	"$BIN/lx-tokenize" -m "$FIX/tiny" --jsonl --keep-going < "$T/in.jsonl" 2> "$T/err" > "$T/tok.mp" || [ $? -eq 1 ]
	"$BIN/lx-featpack" --join "$TSV" < "$T/tok.mp" > "$T/feat.mp"
	"$BIN/lx-encode" -m "$FIX/tiny" < "$T/feat.mp" > "$T/enc.mp"
	"$BIN/lx-head" -m "$FIX/tiny" < "$T/enc.mp" > "$T/out.mp"
	"$BIN/lx-head" -m "$FIX/tiny" --json < "$T/enc.mp" > "$T/out.json"
	$PY - "$T/tok.mp" "$T/out.mp" "$T/out.json" <<'PY'
import json, sys, msgpack
load = lambda p: list(msgpack.Unpacker(open(p, "rb"), raw=False))
t, o = load(sys.argv[1]), load(sys.argv[2])
want = {"question_id": 7, "img_id": "x", "error": "lx-tokenize: stdin: line 3: no field sent (the text to tokenize)"}
assert t[2] == want and o[2] == want, (t[2], o[2])
assert len(o) == 5 and all("answers" in o[k] for k in (0, 1, 3, 4))
j = [json.loads(l) for l in open(sys.argv[3])]
assert len(j) == 5 and j[2] == want, j[2]
PY
}

@test "lx-head --submit --drop-failed leaves error records out of the submission and says how many" {
	encoded
	{ head -c $(stat -c %s "$T/enc.mp") "$T/enc.mp"; $PY -c 'import sys, msgpack; sys.stdout.buffer.write(msgpack.packb({"question_id": 9, "error": "earlier"}))'; } > "$T/in.mp"
	printf 'a%s\n' 0 1 2 3 4 5 6 7 8 9 10 11 > "$T/answers.txt"
	run $SEP to_out "$BIN/lx-head" -m "$FIX/tiny" --labels "$T/answers.txt" --submit vqa --drop-failed < "$T/in.mp"
	[ "$status" -eq 0 ]
	[ "$stderr" = "lx-head: 1 error records left out of the submission" ]
	$PY -c 'import json, sys; s = json.load(open(sys.argv[1])); assert [a["question_id"] for a in s] == [1001, 1002, 1003], s' "$T/out.mp"
}

@test "--keep-going is refused where it has no meaning" {
	run $SEP "$BIN/lx-featpack" --keep-going "$TSV"
	[ "$status" -eq 2 ]
	[ "${stderr%%$'\n'*}" = "lx-featpack: --keep-going needs --join" ]
	run $SEP "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --decode --keep-going
	[ "$status" -eq 2 ]
	[ "${stderr%%$'\n'*}" = "lx-tokenize: --decode takes none of --jsonl, --field, --tokens, --max-length and --keep-going" ]
}
