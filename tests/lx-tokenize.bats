#!/usr/bin/env bats
# lx-tokenize: the reference cases, the modes, bad input. Golden ids come from tokenizer_cases.jsonl (made by
# the reference tokenizer) or from Python (json, msgpack, bert_ref.py checked against those cases).
load helpers

setup() {
	T="$BATS_TEST_TMPDIR"
	TOK="$BIN/lx-tokenize --vocab $FIX/vocab.txt"
	CHECK="$PY $TOP/tests/py/tokcheck.py"
}

# ---- identical to the reference ----

@test "matches the reference on every case in --jsonl mode" {
	$CHECK input "$FIX/tokenizer_cases.jsonl" jsonl > "$T/in.jsonl"
	[ "$(wc -l < "$T/in.jsonl")" -eq 80 ]
	$TOK --jsonl --field text --tokens < "$T/in.jsonl" > "$T/out"
	run $CHECK cases "$FIX/tokenizer_cases.jsonl" jsonl < "$T/out"
	[ "$status" -eq 0 ]
	[ "$output" = "80 cases identical" ]
}

@test "matches the reference on every case without a line break in plain-text mode" {
	$CHECK input "$FIX/tokenizer_cases.jsonl" plain > "$T/in.txt"
	[ "$(wc -l < "$T/in.txt")" -eq 79 ]
	$TOK --tokens < "$T/in.txt" > "$T/out"
	run $CHECK cases "$FIX/tokenizer_cases.jsonl" plain < "$T/out"
	[ "$status" -eq 0 ]
	[ "$output" = "79 cases identical" ]
}

@test "gives the model directory's vocabulary with -m" {
	mkdir "$T/model"
	cp "$FIX/vocab.txt" "$T/model/"
	echo "Is the plate empty?" | "$BIN/lx-tokenize" -m "$T/model" > "$T/out"
	$CHECK ids '[[101, 2003, 1996, 5127, 4064, 1029, 102]]' < "$T/out"
}

@test "agrees with the Python oracle around every code point and on random mixes" {
	# bert_ref.py is first checked against the reference cases, then compared on 180,000 lines
	run $CHECK oracle-self "$FIX/tokenizer_cases.jsonl" "$FIX/vocab.txt"
	[ "$status" -eq 0 ]
	$CHECK oracle-input > "$T/in.txt" 2> "$T/note"
	$TOK --tokens < "$T/in.txt" > "$T/out"
	run $CHECK oracle "$T/in.txt" "$FIX/vocab.txt" < "$T/out"
	[ "$status" -eq 0 ]
	[[ "$output" == *" lines identical" ]]
}

# ---- modes ----

@test "carries every JSON field with its type into the record" {
	cat > "$T/in.jsonl" <<-'EOF'
	{"question_id": 458752000, "img_id": "COCO_val2014_000000000042", "sent": "What is this?", "label": {"net": 1, "yes": 0.3}, "score": 0.1, "flag": true, "off": false, "none": null, "list": [1, "a", [2.5, null, {"k": -7}]], "neg": -9007199254740993, "empty": {}, "nothing": [], "uni": "\u03a9\u00e9\u0000x"}
	{"question_id": "07333408", "img_id": "2375429", "sent": "", "label": {"pipe": 1.0}}
	EOF
	$TOK --jsonl < "$T/in.jsonl" > "$T/out"
	$CHECK carried "$T/in.jsonl" < "$T/out"
	$CHECK ids '[[101, 2054, 2003, 2023, 1029, 102], [101, 102]]' < "$T/out"
}

@test "tokenizes the field named by --field and keeps sent as it is" {
	echo '{"sent": "ignored", "question": "Is it going to rain?"}' > "$T/in.jsonl"
	$TOK --jsonl --field question < "$T/in.jsonl" > "$T/out"
	$CHECK ids '[[101, 2003, 2009, 2183, 2000, 4542, 1029, 102]]' < "$T/out"
	$CHECK field sent '["ignored"]' < "$T/out"
}

@test "replaces input_ids and tokens already in the JSON object" {
	echo '{"input_ids": [1, 2], "tokens": "x", "sent": "Is the plate empty?"}' > "$T/in.jsonl"
	$TOK --jsonl --tokens < "$T/in.jsonl" > "$T/out"
	$CHECK ids '[[101, 2003, 1996, 5127, 4064, 1029, 102]]' < "$T/out"
	$CHECK field tokens '[["[CLS]", "is", "the", "plate", "empty", "?", "[SEP]"]]' < "$T/out"
}

@test "keeps [CLS], the first N-2 pieces and [SEP] with --max-length" {
	# 19 and 24 pieces in the reference cases
	printf '%s\n' "supercalifragilisticexpialidocious antidisestablishmentarianism" \
		"user@example.com http://www.example.org/path?q=1&b=2" "Is the plate empty?" > "$T/in.txt"
	$TOK --max-length 8 < "$T/in.txt" > "$T/out"
	$CHECK ids '[[101, 3565, 9289, 10128, 29181, 24411, 4588, 102],
		[101, 5310, 1030, 2742, 1012, 4012, 8299, 102],
		[101, 2003, 1996, 5127, 4064, 1029, 102]]' < "$T/out"
	$TOK --max-length 20 < "$T/in.txt" > "$T/out"
	$CHECK ids '[[101, 3565, 9289, 10128, 29181, 24411, 4588, 10288, 19312, 21273, 10085, 6313, 3424, 10521, 4355, 7875, 13602, 3672, 12199, 102],
		[101, 5310, 1030, 2742, 1012, 4012, 8299, 1024, 1013, 1013, 7479, 1012, 2742, 1012, 8917, 1013, 4130, 1029, 1053, 102],
		[101, 2003, 1996, 5127, 4064, 1029, 102]]' < "$T/out"
	$TOK --max-length 2 < "$T/in.txt" > "$T/out"
	$CHECK ids '[[101, 102], [101, 102], [101, 102]]' < "$T/out"
}

@test "cuts a question of 300,000 pieces to 20 ids with --max-length 20" {
	$PY -c 'import sys; sys.stdout.write("What is this? " * 75000 + "\n")' > "$T/in.txt"
	$TOK --max-length 20 --tokens < "$T/in.txt" > "$T/out"
	$CHECK ids '[[101, 2054, 2003, 2023, 1029, 2054, 2003, 2023, 1029, 2054, 2003, 2023, 1029, 2054, 2003, 2023, 1029, 2054, 2003, 102]]' < "$T/out"
	$CHECK field tokens '[["[CLS]", "what", "is", "this", "?", "what", "is", "this", "?", "what", "is", "this", "?", "what", "is", "this", "?", "what", "is", "[SEP]"]]' < "$T/out"
}

@test "decodes lower-case questions back to the same text" {
	printf '%s\n' "is the zebra's stripe black or white?" "what is the man doing?" "are there more than 3 apples?" \
		"don't won't can't it's" "is the [MASK] on the table?" > "$T/in.txt"
	$TOK < "$T/in.txt" | "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --decode > "$T/back.txt"
	cmp "$T/in.txt" "$T/back.txt"
}

@test "decodes as HF decode with clean-up, keeping [UNK] and [MASK]" {
	printf '%s\n' "A man riding a wave on top of a surfboard." "3.14159 and \$5.00 and 50% off" "ภาษาไทย" \
		"What's the name of the street?" "C++ C# F# .NET node.js" "A [MASK] is sleeping." "" > "$T/in.txt"
	$TOK < "$T/in.txt" | "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --decode > "$T/back.txt"
	printf '%s\n' "a man riding a wave on top of a surfboard." "3. 14159 and \$ 5. 00 and 50 % off" "[UNK]" \
		"what's the name of the street?" "c + + c # f #. net node. js" "a [MASK] is sleeping." "" > "$T/want.txt"
	cmp "$T/want.txt" "$T/back.txt"
}

@test "decodes int64 ids and plain arrays, dropping [PAD]" {
	$PY -c '
import sys, msgpack, msgpack_numpy, numpy as np
o = sys.stdout.buffer
o.write(msgpack.packb({"input_ids": np.array([101, 2054, 2003, 2023, 1029, 102, 0, 0], dtype=np.int64)}, default=msgpack_numpy.encode))
o.write(msgpack.packb({"input_ids": [101, 14477, 20961, 3468, 102]}))
' > "$T/in"
	run "$BIN/lx-tokenize" --vocab "$FIX/vocab.txt" --decode < "$T/in"
	[ "$status" -eq 0 ]
	[ "$output" = "what is this?
unaffable" ]
}

@test "writes a record for an empty line" {
	printf '\nIs the plate empty?\n\n' | $TOK > "$T/out"
	$CHECK ids '[[101, 102], [101, 2003, 1996, 5127, 4064, 1029, 102], [101, 102]]' < "$T/out"
	$CHECK field sent '["", "Is the plate empty?", ""]' < "$T/out"
}

@test "tokenizes a line of 1 MB" {
	$PY -c 'import sys; sys.stdout.write("What is this? " * 75000 + "\n" + "a" * 1048576 + "\n")' > "$T/in.txt"
	$TOK < "$T/in.txt" > "$T/out"
	$PY -c 'import json; print(json.dumps([[101] + [2054, 2003, 2023, 1029] * 75000 + [102], [101, 100, 102]]))' > "$T/want.json"
	$CHECK ids "@$T/want.json" < "$T/out"
}

@test "strips the carriage return of CRLF line endings" {
	printf 'Is the plate empty?\r\nWhat are they eating?\r\n' | $TOK > "$T/out"
	$CHECK field sent '["Is the plate empty?", "What are they eating?"]' < "$T/out"
	$CHECK ids '[[101, 2003, 1996, 5127, 4064, 1029, 102], [101, 2054, 2024, 2027, 5983, 1029, 102]]' < "$T/out"
	printf '{"sent": "Is the plate empty?"}\r\n' | $TOK --jsonl > "$T/out"
	$CHECK ids '[[101, 2003, 1996, 5127, 4064, 1029, 102]]' < "$T/out"
}

@test "reads a last line without a line ending, and files in order" {
	printf 'Is the plate empty?\nWhat are they eating?' > "$T/a.txt"
	printf 'Is the plate empty?' > "$T/b.txt"
	echo "What are they eating?" | $TOK "$T/a.txt" - "$T/b.txt" > "$T/out"
	$CHECK field sent '["Is the plate empty?", "What are they eating?", "What are they eating?", "Is the plate empty?"]' < "$T/out"
}

@test "adds the piece strings with --tokens" {
	echo "Two giraffes" | $TOK --tokens > "$T/out"
	$CHECK field tokens '[["[CLS]", "two", "gi", "##raf", "##fe", "##s", "[SEP]"]]' < "$T/out"
}

@test "writes input_ids in the msgpack-numpy layout" {
	echo "Is it?" | $TOK > "$T/out"
	$PY -c '
import sys, struct, msgpack
r = msgpack.unpackb(open(sys.argv[1], "rb").read(), raw=False)
t = r["input_ids"]
assert list(r.keys()) == ["sent", "input_ids"], r.keys()
assert t[b"nd"] is True and t[b"type"] == "<i4" and t[b"shape"] == [5], t
assert t[b"data"] == struct.pack("<5i", 101, 2003, 2009, 1029, 102), t[b"data"]
' "$T/out"
}

# ---- invalid UTF-8 ----

@test "rejects invalid UTF-8, naming the line and the byte" {
	run sh -c "printf 'Is it?\ncaf\351 au lait\n' | $TOK > '$T/out'"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: line 2: invalid UTF-8 at byte 4 (0xe9); --replace-invalid reads it as U+FFFD" ]
	$CHECK field sent '["Is it?"]' < "$T/out"
}

@test "reads invalid UTF-8 as U+FFFD with --replace-invalid, as Python's errors=replace" {
	$PY -c '
import sys
import json
lines = [b"control\x00chars\x07here\xff", b"Is\xf0\x9f\x98 it\xed\xa0\x80?\xc0\xaf \xe0\x80\xe2\x82", b"\xf4\x90\x80\x80x\xc3"]
sys.stdout.buffer.write(b"\n".join(lines) + b"\n")
json.dump([l.decode("utf-8", "replace") for l in lines], open(sys.argv[1], "w"))
' "$T/want.json" > "$T/in.txt"
	$TOK --replace-invalid < "$T/in.txt" > "$T/out"
	$CHECK field sent "$(cat "$T/want.json")" < "$T/out"
	$CHECK ids '[[101, 2491, 7507, 2869, 5886, 2063, 102], [101, 2003, 2009, 1029, 102], [101, 1060, 102]]' < "$T/out"
}

@test "rejects invalid UTF-8 in --jsonl mode, and repairs it with --replace-invalid" {
	run sh -c "printf '{\"sent\": \"caf\351\"}\n' | $TOK --jsonl > /dev/null"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: line 1: invalid UTF-8 at byte 14 (0xe9); --replace-invalid reads it as U+FFFD" ]
	printf '{"sent": "Is\xff it?"}\n' | $TOK --jsonl --replace-invalid > "$T/out"
	$CHECK field sent '["Is\ufffd it?"]' < "$T/out"
	$CHECK ids '[[101, 2003, 2009, 1029, 102]]' < "$T/out"
}

# ---- the authors' layout: one JSON array of objects ----

@test "--jsonl reads a JSON array of objects as it reads the same objects one a line" {
	$PY -c 'import json, sys; json.dump([json.loads(l) for l in sys.stdin], sys.stdout, indent=1)' \
		< "$FIX/questions.jsonl" > "$T/list.json"
	[ "$(head -c 1 "$T/list.json")" = "[" ]
	$TOK --jsonl < "$FIX/questions.jsonl" > "$T/lines.mp"
	$TOK --jsonl "$T/list.json" > "$T/list.mp"
	cmp "$T/lines.mp" "$T/list.mp"
	$CHECK field sent "$($PY -c 'import json, sys; print(json.dumps([json.loads(l)["sent"] for l in sys.stdin]))' \
		< "$FIX/questions.jsonl")" < "$T/list.mp"
	# strings holding the scanner's separators, nested values, arrays one after another, an empty one
	printf ' [{"sent": "Is it?", "q": "a,]\\"}\\\\", "n": [1, {"x": "]"}]}\n,{"sent": "no"}]\n[] [{"sent": "c"}]\n' \
		| $TOK --jsonl > "$T/out"
	$CHECK field sent '["Is it?", "no", "c"]' < "$T/out"
	$CHECK field q '["a,]\"}\\", null, null]' < "$T/out"
}

@test "--jsonl streams a big JSON array: memory does not grow with its length" {
	command -v /usr/bin/time > /dev/null || skip "no /usr/bin/time"
	nm "$BIN/lx-tokenize" 2> /dev/null | grep -q __asan_init && skip "a sanitizer build measures its own memory"
	for n in 1000 200000; do
		$PY -c 'import sys; n = int(sys.argv[1]); print("[" + ",\n".join("{\"question_id\": %d, \"sent\": \"Is the plate number %d empty?\"}" % (i, i) for i in range(n)) + "]")' $n > "$T/q$n.json"
		/usr/bin/time -f '%M' -o "$T/rss$n" $TOK --jsonl "$T/q$n.json" > "$T/out$n"
	done
	[ "$(stat -c %s "$T/q200000.json")" -gt 10000000 ]
	$PY -c 'import msgpack, sys; n = sum(1 for r in msgpack.Unpacker(open(sys.argv[1], "rb"))); assert n == 200000, n' "$T/out200000"
	small=$(tail -n 1 "$T/rss1000") big=$(tail -n 1 "$T/rss200000")
	echo "peak RSS: $small KB over 1000 elements, $big KB over 200000"
	[ "$big" -le $((small + 1024)) ]
}

@test "--jsonl names the element of a JSON array that is bad, and the line it starts on" {
	printf '[{"sent": "a"},\n {"sent": 3}]' > "$T/q.json"
	run sh -c "$TOK --jsonl '$T/q.json' > '$T/out'"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: $T/q.json: element 2 (line 2): field sent is a number, expected a string" ]
	$CHECK field sent '["a"]' < "$T/out"
	run sh -c "printf '[{\"sent\": \"a\"},\n]' | $TOK --jsonl > /dev/null"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: element 2 (line 2): nothing there, expected a JSON object" ]
	run sh -c "printf '[\"Is it?\"]' | $TOK --jsonl > /dev/null"
	[ "$output" = "lx-tokenize: stdin: element 1 (line 1): a string, expected a JSON object" ]
	run sh -c "printf '[{\"sent\": \"a\"}, {\"sent\": \"b\"' | $TOK --jsonl > /dev/null"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: line 1: the file ends inside the JSON array (after 1 elements), expected ']'" ]
	run sh -c "printf '[{\"sent\": \"a\"}]\n{\"sent\": \"b\"}\n' | $TOK --jsonl > /dev/null"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: line 2: '{' after the JSON array, expected '[' or the end of the file" ]
	run sh -c "printf '[{\"sent\": \"a\"}, 7, {\"sent\": \"b\"}]' | $TOK --jsonl --keep-going > '$T/out'"
	[ "$status" -eq 1 ]
	$CHECK field sent '["a", null, "b"]' < "$T/out"
}

# ---- bad input ----

@test "rejects a line that is not JSON after writing the records before it" {
	printf '{"sent": "Is it?"}\n{"sent": "Is the plate empty?"}\n{"sent": "c",}\n{"sent": "d"}\n' > "$T/in.jsonl"
	run sh -c "$TOK --jsonl < '$T/in.jsonl' > '$T/out'"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: line 3: not JSON (string or '}' expected near '}')" ]
	$CHECK ids '[[101, 2003, 2009, 1029, 102], [101, 2003, 1996, 5127, 4064, 1029, 102]]' < "$T/out"
}

@test "names the file in messages" {
	printf '{"sent": "Is it?"}\nplain text\n' > "$T/q.jsonl"
	run sh -c "$TOK --jsonl '$T/q.jsonl' > '$T/out'"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: $T/q.jsonl: line 2: not JSON (invalid token near 'plain')" ]
	$CHECK ids '[[101, 2003, 2009, 1029, 102]]' < "$T/out"
}

@test "rejects a JSON line that is not an object, and an empty line" {
	run sh -c "printf '\"Is it?\"\n' | $TOK --jsonl > /dev/null"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: line 1: a string, expected a JSON object" ]
	run sh -c "printf '{\"sent\": \"a\"}\n\n' | $TOK --jsonl > /dev/null"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: line 2: empty line, expected a JSON object" ]
}

@test "rejects an object without the text field" {
	printf '{"sent": "Is it?"}\n{"question": "Is it?"}\n' > "$T/in.jsonl"
	run sh -c "$TOK --jsonl < '$T/in.jsonl' > '$T/out'"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: line 2: no field sent (the text to tokenize)" ]
	$CHECK ids '[[101, 2003, 2009, 1029, 102]]' < "$T/out"
	run sh -c "$TOK --jsonl --field question < '$T/in.jsonl' > /dev/null"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: line 1: no field question (the text to tokenize)" ]
}

@test "rejects a text field that is not a string" {
	printf '{"sent": "Is it?"}\n{"sent": "a"}\n{"sent": 42}\n' > "$T/in.jsonl"
	run sh -c "$TOK --jsonl < '$T/in.jsonl' > '$T/out'"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: line 3: field sent is a number, expected a string" ]
	$CHECK field sent '["Is it?", "a"]' < "$T/out"
	run sh -c "printf '{\"sent\": null}\n' | $TOK --jsonl > /dev/null"
	[ "$output" = "lx-tokenize: stdin: line 1: field sent is null, expected a string" ]
	run sh -c "printf '{\"sent\": [\"a\"]}\n' | $TOK --jsonl > /dev/null"
	[ "$output" = "lx-tokenize: stdin: line 1: field sent is an array, expected a string" ]
}

@test "rejects a vocabulary without [CLS], [SEP] or [UNK] with status 3" {
	grep -v -x -F '[CLS]' "$FIX/vocab.txt" > "$T/vocab.txt"
	run sh -c "echo hi | '$BIN/lx-tokenize' --vocab '$T/vocab.txt'"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-tokenize: $T/vocab.txt: no [CLS] piece (a BERT vocabulary holds [CLS], [SEP] and [UNK])" ]
	printf '[PAD]\n[CLS]\n[SEP]\n' > "$T/vocab.txt"
	run sh -c "echo hi | '$BIN/lx-tokenize' --vocab '$T/vocab.txt'"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-tokenize: $T/vocab.txt: no [UNK] piece (a BERT vocabulary holds [CLS], [SEP] and [UNK])" ]
}

@test "rejects a missing vocabulary and a vocabulary that is not UTF-8 with status 3" {
	run sh -c "echo hi | '$BIN/lx-tokenize' -m '$T/nowhere'"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-tokenize: $T/nowhere/vocab.txt: No such file or directory" ]
	printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\ncaf\351\n' > "$T/vocab.txt"
	run sh -c "echo hi | '$BIN/lx-tokenize' --vocab '$T/vocab.txt'"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-tokenize: $T/vocab.txt: line 5: invalid UTF-8 at byte 4 (0xe9)" ]
}

@test "rejects a missing input file with status 3 after the files before it" {
	echo "Is it?" > "$T/a.txt"
	run sh -c "$TOK '$T/a.txt' '$T/none.txt' > '$T/out'"
	[ "$status" -eq 3 ]
	[ "$output" = "lx-tokenize: $T/none.txt: No such file or directory" ]
	$CHECK ids '[[101, 2003, 2009, 1029, 102]]' < "$T/out"
}

@test "rejects an id outside the vocabulary in --decode mode after the lines before it" {
	$PY -c '
import sys, msgpack
sys.stdout.buffer.write(msgpack.packb({"input_ids": [101, 2054, 102]}) + msgpack.packb({"question_id": 7, "input_ids": [101, 30522, 102]}))
' > "$T/in"
	run sh -c "'$BIN/lx-tokenize' --vocab '$FIX/vocab.txt' --decode < '$T/in' > '$T/out'"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: record 2 (id 7): id 30522 at index 1 is outside the vocabulary (0 to 30521)" ]
	[ "$(cat "$T/out")" = "what" ]
	run sh -c "printf '\201\240a' | '$BIN/lx-tokenize' --vocab '$FIX/vocab.txt' --decode"
	[ "$status" -eq 1 ]
	[ "$output" = "lx-tokenize: stdin: record 1: missing field input_ids" ]
}

@test "fails with status 4 when stdout cannot be written" {
	run sh -c "echo 'Is it?' | $TOK > /dev/full"
	[ "$status" -eq 4 ]
	[ "$output" = "lx-tokenize: stdout: write failed: No space left on device" ]
	run sh -c "echo 'Is it?' | $TOK | '$BIN/lx-tokenize' --vocab '$FIX/vocab.txt' --decode > /dev/full"
	[ "$status" -eq 4 ]
	[ "$output" = "lx-tokenize: stdout: write failed: No space left on device" ]
}

# ---- usage ----

@test "prints usage on -h and exits 0" {
	run "$BIN/lx-tokenize" -h
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "usage: lx-tokenize (-m DIR | --vocab FILE) [options] [FILE]..." ]
}

@test "rejects bad usage with status 2" {
	run "$BIN/lx-tokenize"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-tokenize: give the vocabulary with exactly one of -m DIR and --vocab FILE" ]
	run $TOK --max-length 1
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-tokenize: --max-length takes a whole number from 2 to 2147483647, not '1'" ]
	[ "${lines[1]}" = "usage: lx-tokenize (-m DIR | --vocab FILE) [options] [FILE]..." ]
	run $TOK --field question
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "lx-tokenize: --field needs --jsonl" ]
	run $TOK --decode --tokens
	[ "$status" -eq 2 ]
	run $TOK --no-such-option
	[ "$status" -eq 2 ]
}

@test "shows progress on stderr only with --progress" {
	printf 'Is it?\nWhat?\nIs the plate empty?\n' > "$T/in.txt"
	$TOK < "$T/in.txt" > "$T/plain" 2> "$T/err0"
	$TOK --progress < "$T/in.txt" > "$T/out" 2> "$T/err"
	cmp "$T/plain" "$T/out"
	[ ! -s "$T/err0" ]
	[[ "$(cat "$T/err")" =~ ^"lx-tokenize: 3 lines in 0:0"[0-9]", "[0-9.]+" lines/s, 33 B"$ ]]
}
