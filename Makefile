# lx - LXMERT as Unix tools. One non-recursive Makefile: lib/*.c -> liblx.a, cmd/lx-*.c -> bin/lx-*.
# CC, CFLAGS, LDFLAGS and PREFIX may be given on the command line.

CC ?= cc
CFLAGS ?= -O2 -g
LDFLAGS ?=
PREFIX ?= /usr/local
PKGS = openblas msgpack libutf8proc jansson libpng libjpeg freetype2
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN = -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Wno-unused-parameter
ALL_CFLAGS = $(WARN) -Ilib $(PKG_CFLAGS) $(CFLAGS)
LIBS = $(PKG_LIBS) -lm -lpthread

LIB_SRC := $(sort $(wildcard lib/*.c))
LIB_OBJ := $(LIB_SRC:.c=.o)
CMD_SRC := $(sort $(wildcard cmd/lx-*.c))
TOOLS := $(patsubst cmd/%.c,bin/%,$(CMD_SRC))
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
UNIT := $(patsubst tests/unit/%.c,tests/unit/bin/%,$(UNIT_SRC))
HEADERS := $(wildcard lib/*.h)

all: $(TOOLS)

lib/%.o: lib/%.c $(HEADERS)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

lib/liblx.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

bin/%: cmd/%.c lib/liblx.a $(HEADERS)
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) -o $@ $< lib/liblx.a $(LDFLAGS) $(LIBS)

tests/unit/bin/%: tests/unit/%.c lib/liblx.a $(HEADERS)
	@mkdir -p tests/unit/bin
	$(CC) $(ALL_CFLAGS) -o $@ $< lib/liblx.a $(LDFLAGS) $(LIBS)

# Every test: the public headers alone, the C unit tests, then one bats suite per tool.
check: all $(UNIT) check-headers
	@for t in $(UNIT); do $$t || exit 1; done
	bats tests/

# Each public header compiles on its own, strictly.
check-headers:
	@for h in lib/lx*.h; do \
		printf '#include "%s"\nint main(void) { return 0; }\n' "$${h#lib/}" | \
		$(CC) -std=c99 -pedantic -Wall -Wextra -Werror -Ilib $(PKG_CFLAGS) -x c -c -o /dev/null - || exit 1; \
	done; echo "headers: each compiles alone with -std=c99 -pedantic -Werror"

# Debian packages the build and the tests need; run as root to install them.
DEBS = build-essential pkg-config libopenblas-dev libmsgpack-dev libutf8proc-dev libjansson-dev bats \
       python3 python3-numpy python3-msgpack python3-msgpack-numpy \
       libpng-dev libjpeg62-turbo-dev libfreetype-dev fonts-dejavu-core chromium python3-pil
deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "deps: all installed"; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: missing packages; install them with:"; echo "  sudo apt-get install $$missing"; exit 1; fi

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	cp $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	cp man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	cp man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/

clean:
	rm -rf bin lib/*.o lib/liblx.a tests/unit/bin

.PHONY: all check check-headers deps install clean
.SECONDARY: $(LIB_OBJ)
