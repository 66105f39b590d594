# lx - LXMERT as Unix tools. One non-recursive Makefile: lib/LAYER/*.c -> liblx.a, cmd/lx-*.c + cmd/tool.c -> the tools.
# Everything is built out of the tree, in $(O) (build/ by default); `bin` is a link to build/bin.
# CC, CFLAGS, LDFLAGS and PREFIX may be given on the command line.

CC ?= cc
CFLAGS ?= -O2 -g
LDFLAGS ?=
PREFIX ?= /usr/local
PKGS = openblas msgpack libutf8proc jansson zlib libpng libjpeg freetype2 yaml-0.1
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN = -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Wno-unused-parameter \
       -Werror=implicit-function-declaration
ALL_CFLAGS = $(WARN) -Ilib $(PKG_CFLAGS) $(CFLAGS)
DEPFLAGS = -MMD -MP
LIBS = $(PKG_LIBS) -lm -lpthread

# The matrix products' backends (lib/nn/matmul.c): OpenBLAS always; oneDNN (Debian's libdnnl-dev, no pkg-config
# file) when a program including dnnl.h links with -ldnnl. LX_DNNL=0 builds without it, LX_DNNL=1 insists.
LX_DNNL := $(shell printf '\043include <dnnl.h>\nint main(void) { return dnnl_sgemm(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0); }\n' | \
	$(CC) -x c -o /dev/null - -ldnnl >/dev/null 2>&1 && echo 1 || echo 0)
ifeq ($(LX_DNNL),1)
ALL_CFLAGS += -DLX_DNNL -fopenmp
LIBS += -ldnnl -fopenmp
endif

# O: where objects, liblx.a, bin/, the unit tests and the benchmarks go (another O keeps a sanitizer build
# apart). The library's layers are the folders of lib/, in the order lib/LAYERS gives.
O ?= build
LIB_SRC := $(sort $(wildcard lib/*/*.c))
LIB_OBJ := $(patsubst lib/%.c,$(O)/lib/%.o,$(LIB_SRC))
CMD_SRC := $(sort $(wildcard cmd/lx-*.c))
TOOLS := $(patsubst cmd/%.c,$(O)/bin/%,$(CMD_SRC))
TOOL_OBJ := $(O)/cmd/tool.o
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
UNIT := $(patsubst tests/unit/%.c,$(O)/tests/unit/%,$(UNIT_SRC))
LIBLX := $(O)/lib/liblx.a

# The library's example programs (examples/liblx/, liblx(3)), built with the tools so that they keep compiling.
EXAMPLES := $(patsubst examples/liblx/%.c,$(O)/examples/%,$(sort $(wildcard examples/liblx/*.c)))

all: $(TOOLS) $(EXAMPLES) $(O)/lib/pkgconfig/liblx.pc
ifeq ($(O),build)
	@if [ -d bin ] && [ ! -L bin ]; then rm -rf bin; fi; ln -sfn build/bin bin
endif

$(O)/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(LIBLX): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

# How to build a program on liblx from this tree (liblx(3)): pkg-config --cflags --libs liblx, with
# PKG_CONFIG_PATH=build/lib/pkgconfig. It holds what this build links with (oneDNN or not). `make install`
# writes one for the installed files.
LX_VERSION := $(shell sed -n 's/^\#define LX_VERSION "\(.*\)"/\1/p' lib/lx_core.h)
define liblx_pc
	@mkdir -p $(dir $(1))
	@printf 'Name: liblx\nDescription: LXMERT in C, the library of the lx tools (liblx(3))\nVersion: %s\nCflags: %s\nLibs: %s\n' \
		'$(LX_VERSION)' '$(2) $(PKG_CFLAGS)' '$(3) $(LDFLAGS) $(LIBS)' > $(1)
endef
$(O)/lib/pkgconfig/liblx.pc: Makefile lib/lx_core.h
	$(call liblx_pc,$@,-I$(abspath lib),$(abspath $(LIBLX)))

# The tool skeleton (cmd/tool.c: options, messages, progress, signals, the record loop and the ending),
# compiled once and linked into every tool.
$(TOOL_OBJ): cmd/tool.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(O)/bin/%: cmd/%.c $(TOOL_OBJ) $(LIBLX)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -o $@ $< $(TOOL_OBJ) $(LIBLX) $(LDFLAGS) $(LIBS)

$(O)/examples/%: examples/liblx/%.c $(LIBLX)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -o $@ $< $(LIBLX) $(LDFLAGS) $(LIBS)

$(O)/tests/unit/%: tests/unit/%.c $(LIBLX)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -o $@ $< $(LIBLX) $(LDFLAGS) $(LIBS)

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TOOLS:=.d) $(UNIT:=.d) $(EXAMPLES:=.d)

# Every test: the public headers alone, the C unit tests, then one bats suite per tool.
check: check-deps all $(UNIT) check-headers check-layers
	@for t in $(UNIT); do $$t || exit 1; done
	LX_BIN=$(abspath $(O)/bin) bats tests/

# The OpenBLAS-only build (LX_DNNL=0, in build-openblas/): the tests that run matrix products - the unit
# tests, the encoder, heads and training suites - so that CI checks both backends.
check-openblas:
	$(MAKE) O=build-openblas LX_DNNL=0 all $(patsubst $(O)/%,build-openblas/%,$(UNIT))
	@for t in $(patsubst $(O)/%,build-openblas/%,$(UNIT)); do $$t || exit 1; done
	LX_BIN=$(abspath build-openblas/bin) bats tests/lx-encode.bats tests/lx-head.bats tests/lx-train.bats tests/reduced.bats

# The same tests on a build with AddressSanitizer and UndefinedBehaviorSanitizer, in build-asan/.
ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
check-asan:
	$(MAKE) O=build-asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" check

# The sample pipeline (README) under valgrind, stage by stage: any memory error or definite/indirect leak
# fails (tests/valgrind.sh). The products run on OpenBLAS there: oneDNN's JIT kernels read with AVX-512
# masked loads past the end of their own buffers, which memcheck cannot tell from real over-reads (the same
# tests run on oneDNN under AddressSanitizer in check-asan).
check-valgrind: all
	LX_MATMUL=openblas sh tests/valgrind.sh $(O)/bin

# Long runs kept out of check: memory stays flat over 100,000 records (tests/long/memory.bats, a few
# seconds; a sanitizer build's quarantine would grow by design, so it runs on the plain build only).
check-long: all
	LX_BIN=$(abspath $(O)/bin) bats tests/long/

# No file of liblx depends on a layer above its own (lib/LAYERS), by its includes and by its symbols.
check-layers: $(LIBLX)
	sh tests/layers.sh lib $(O)/lib

# Each public header compiles on its own, strictly.
check-headers:
	@for h in lib/lx*.h; do \
		printf '#include "%s"\nint main(void) { return 0; }\n' "$${h#lib/}" | \
		$(CC) -std=c99 -pedantic -Wall -Wextra -Werror -Ilib $(PKG_CFLAGS) -x c -c -o /dev/null - || exit 1; \
	done; echo "headers: each compiles alone with -std=c99 -pedantic -Werror"

# lx-tokenize's speed on generated questions (bench/tokenize.sh; LX_BENCH_QUESTIONS sets how many).
bench-tokenize: $(O)/bin/lx-tokenize
	LX_BIN=$(abspath $(O)/bin) sh bench/tokenize.sh

# Every benchmark: the encoder, training, the tokenizer, the feature join, the whole pipeline, the attention
# pages. Benchmarks are not tests.
bench: bench-encode bench-train bench-tokenize bench-featpack bench-explain bench-pipeline bench-attnviz

# lx-attnviz's records/s and bytes/record, tiny and lxmert-base shapes, default kinds and all (bench/attnviz.sh).
bench-attnviz: all $(O)/bench/bin/mkmodel
	$(BENCH_ENV) sh bench/attnviz.sh

# Join throughput of lx-featpack (bench/featpack.sh; IMAGES, BOXES, DIM, QUESTIONS may be set).
bench-featpack: all
	LX_BIN=$(abspath $(O)/bin) sh bench/featpack.sh

# Debian packages: DEBS to build and run the tools (and the demo's answer table, in python3), TEST_DEBS
# for every test, fuzzing and the benchmarks; CHECK_DEBS, the part `make check` needs (slurm-wlm and munge for
# the single-node cluster of tests/slurm.bats); BENCH_DEBS, the PyTorch peer that `make bench-encode` runs
# beside lx (skipped without it). `make deps` / `make test-deps` install what is missing when run as root and
# otherwise print the exact apt-get command.
DEBS = build-essential pkg-config libopenblas-dev libdnnl-dev libmsgpack-dev libutf8proc-dev libjansson-dev \
       zlib1g-dev libpng-dev libjpeg62-turbo-dev libfreetype-dev libyaml-dev fonts-dejavu-core python3
CHECK_DEBS = bats time parallel jq strace python3-numpy python3-msgpack python3-msgpack-numpy python3-pil chromium \
             slurm-wlm munge
TEST_DEBS = $(CHECK_DEBS) clang libclang-rt-14-dev valgrind
BENCH_DEBS = python3-torch
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all installed"; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: missing packages; install them with:"; echo "  sudo apt-get install $$missing"; exit 1; fi
endef
deps:
	$(call install_missing,$(DEBS))
check-deps:
	$(call install_missing,$(DEBS) $(CHECK_DEBS))
test-deps:
	$(call install_missing,$(DEBS) $(TEST_DEBS))
bench-deps:
	$(call install_missing,$(DEBS) $(BENCH_DEBS))

# Fuzzing with libFuzzer (clang, Debian's libclang-rt-14-dev): every parser of outside input, each for
# FUZZ_SECONDS, two at a time, from a seed corpus taken from the fixtures, with a memory limit from
# man/lx-limits.7 (tests/fuzz/run.sh). Crashes and inputs that take too much memory land in build-fuzz/.
# A developer run, not part of make check or CI.
FUZZ_SECONDS ?= 300
FUZZ_CC ?= clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
fuzz-build:
	$(MAKE) O=build-fuzz CC=$(FUZZ_CC) CFLAGS="-g -O1 -fsanitize=fuzzer-no-link,address,undefined" build-fuzz/lib/liblx.a
	@for f in $(FUZZ_SRC); do \
		n=$$(basename $$f .c); \
		$(FUZZ_CC) $(WARN) -Ilib $(PKG_CFLAGS) $(FUZZ_FLAGS) -o build-fuzz/$$n $$f build-fuzz/lib/liblx.a $(LIBS) || exit 1; \
	done
fuzz: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

# Benchmarks (not tests): bench/encode.sh runs these on a full-size random model in bench/out/.
BENCH := $(O)/bench/bin/mkmodel $(O)/bench/bin/bench_encode $(O)/bench/bin/bench_train $(O)/bench/bin/bench_explain \
         $(O)/bench/bin/bench_detect $(O)/bench/bin/detect_precision
$(O)/bench/bin/%: bench/%.c $(LIBLX)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -o $@ $< $(LIBLX) $(LDFLAGS) $(LIBS)
-include $(BENCH:=.d)
BENCH_ENV = LX_BIN=$(abspath $(O)/bin) LX_BENCH_BIN=$(abspath $(O)/bench/bin) LX_BENCH_OUT=$(abspath $(O)/bench/out)
bench-encode: all $(BENCH)
	$(BENCH_ENV) sh bench/encode.sh

# The PyTorch peers of bench-encode (bench/peer.py) against the fixtures' golden outputs, to 1e-5, and of
# bench-explain (bench/peer_explain.py) against relevance-tiny (the same answers, the maps to 1e-5).
check-peer:
	/usr/bin/python3 bench/peer.py check tests/fixtures/tiny
	/usr/bin/python3 bench/peer.py check tests/fixtures/micro
	/usr/bin/python3 bench/peer_explain.py check tests/fixtures/tiny tests/fixtures/relevance-tiny

# A generated VQA evaluation end to end, tokenize to submission, with models/demo and with lxmert-base's
# shapes: records/s and CPU per stage (bench/pipeline.sh; QUESTIONS, BASE_QUESTIONS, ENCODE_OPTS, HEAD_OPTS).
bench-pipeline: all $(O)/bench/bin/mkmodel
	$(BENCH_ENV) sh bench/pipeline.sh

# What int8 and bf16 cost models/demo against float32: answers and VQA score on the sample and the held-out
# template questions (bench/demo_accuracy.sh).
bench-accuracy: all
	LX_BIN=$(abspath $(O)/bin) sh bench/demo_accuracy.sh

# Training speed at lxmert-base shapes (bench/train.sh; BENCH_TRAIN_STEPS sets the timed steps, 3 by default).
bench-train: all $(BENCH)
	$(BENCH_ENV) sh bench/train.sh

# lx-explain's seconds per question at lxmert-base shapes, batch 1, 2 threads, beside lx-encode's and the same
# method in PyTorch (bench/peer_explain.py, skipped without torch) (bench/explain.sh).
bench-explain: all $(BENCH)
	$(BENCH_ENV) sh bench/explain.sh

# The detector at the real shapes, random weights (bench/detect.sh; FRCNN_MODEL, FRCNN_DEMO, FRCNN_PEER, FRCNN_GEN,
# IMAGES): seconds per photo and GFLOP/s in float32, --bf16 and --int8, what the last two cost, beside the LXMERT
# demo's PyTorch code when a local copy is named, and with FRCNN_GEN matched against the demo's own detections.
bench-detect: all $(O)/bench/bin/bench_detect $(O)/bench/bin/detect_precision
	$(BENCH_ENV) sh bench/detect.sh

# The demo model (README.md, "The demo model"): generate questions on mixed scenes of the sample images' boxes,
# train a small LXMERT on them, write models/demo. About 10 minutes on 2 cores.
train-demo: all $(O)/bench/bin/mkmodel
	LX_BIN=$(abspath $(O)/bin) LX_BENCH_BIN=$(abspath $(O)/bench/bin) sh examples/demo/train.sh

# The demo model's answers to the sample questions: tokenize, join the features, encode, answer.
demo: deps
	$(MAKE) all
	LX_BIN=$(abspath $(O)/bin) sh examples/demo/run.sh

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/lx \
	         $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man3 $(DESTDIR)$(PREFIX)/share/man/man5 \
	         $(DESTDIR)$(PREFIX)/share/man/man7
	cp $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	cp $(LIBLX) $(DESTDIR)$(PREFIX)/lib/
	cp lib/lx*.h $(DESTDIR)$(PREFIX)/include/lx/
	cp man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	cp man/*.3 $(DESTDIR)$(PREFIX)/share/man/man3/
	cp man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	cp man/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/
	$(call liblx_pc,$(DESTDIR)$(PREFIX)/lib/pkgconfig/liblx.pc,-I$(PREFIX)/include/lx,-L$(PREFIX)/lib -llx)

clean:
	rm -rf build bin build-asan build-fuzz build-openblas bench/out

.PHONY: all bench bench-accuracy bench-deps bench-detect bench-encode bench-explain check-peer bench-featpack bench-pipeline \
        bench-tokenize bench-train \
        check check-asan check-deps check-openblas check-headers check-layers check-long \
        check-valgrind deps demo fuzz fuzz-build install clean test-deps train-demo
.SECONDARY:
