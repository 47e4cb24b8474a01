# Herald -- one GNU make for the daemon, its tests, fuzzers and benchmarks.
#
#   make            build build/herald
#   make run        install what running needs, build, start Herald with its demo
#   make test       install, build, run every suite (plain, then ASan+UBSan),
#                   ending with one line "N passed, N failed"
#   make fuzz       build the libFuzzer targets and run each for FUZZ_SECONDS
#                   (or FUZZ_RUNS executions: the long run, FUZZ_RUNS=10000000)
#   make bench      Herald beside Nchan and Node ws, the raw-write ceiling, and
#                   the micro-benchmarks (docs/performance.md)
#   make format     rewrite the C code as .clang-format says (make test checks it)
#   make install    install under PREFIX (/usr/local) and DESTDIR
#   make deb        build/herald_VERSION-REV_ARCH.deb with debhelper (docs/deploy.md)
#   make SANITIZE=address,undefined   a sanitized build in build-san/

CC      ?= cc
SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD   ?= build
SANFLAGS =
else
BUILD   ?= build-san
SANFLAGS = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN    = -Wall -Wextra -Wstrict-prototypes -Wshadow -Wno-unused-parameter
ifneq ($(CI),)
WARN   += -Werror
endif
OPT     ?= -O2
# The layers, lowest first: a file may include headers of its own layer and
# those below it (docs/internals.md; tests/lib/check-layers.py enforces it).
LAYERS  = core proto cfg store route rpc event api
INCS    = $(LAYERS:%=-Ilib/%)
CFLAGS  += -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -pthread $(INCS) $(SANFLAGS)
LDFLAGS += $(SANFLAGS) -pthread
LIBS     = -lev -lfcgi -ljansson -linih -lssl -lcrypto -lhiredis

# Debian packages, split so that `make run` installs only what running needs:
# RUN_PKGS builds Herald and runs its demo (php-fpm and SQLite for the office
# RPC script, procps for run.sh's pgrep; libc6-dev, which gcc only
# recommends, for the C library's headers); TEST_PKGS adds the test toolchain.
# `make deps-run` installs the first list, `make deps` both (and npm's).
RUN_PKGS  = gcc libc6-dev make pkg-config libev-dev libfcgi-dev libjansson-dev libssl-dev \
            libinih-dev uthash-dev libhiredis-dev php-cli php-fpm php-sqlite3 procps
TEST_PKGS = libcmocka-dev nginx-light redis-server \
            python3 python3-websockets python3-pytest phpunit clang clang-format \
            libclang-rt-14-dev curl psmisc chromium openssl prometheus
PKGS = $(RUN_PKGS) $(TEST_PKGS)

CORE_SRC = $(foreach l,$(LAYERS),$(wildcard lib/$(l)/*.c))
CORE_OBJ = $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
HEADERS  = $(foreach l,$(LAYERS),$(wildcard lib/$(l)/*.h))
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps deps-run run test test-plain unit fuzz fuzz-build bench bench-build clean format install deb

all: $(BUILD)/herald

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libherald.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The process layer: main.c and the subcommand it hands over to (src/status.c).
PROC_OBJ = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard src/*.c))
$(PROC_OBJ): $(wildcard src/*.h)

$(BUILD)/herald: $(PROC_OBJ) $(BUILD)/libherald.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# test_status.c includes src/status.c and src/status_table.c, to test their static functions.
$(BUILD)/tests/test_status: $(wildcard src/status*.[ch])

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libherald.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libherald.a $(LIBS) -lcmocka $(LDFLAGS)

unit: $(UNIT_BIN)

# What `make run` needs, and nothing of the test toolchain (no npm either).
deps-run:
	@./tests/lib/install-deps.sh $(RUN_PKGS)

# Node runs herald.js's tests with npm's ws package. Debian's nodejs and npm
# are installed only where no node is on the PATH (a NodeSource node bundles
# its own npm, and Debian's npm package would conflict with it). Every Node
# package must run on Debian 12's nodejs, 18.19 (66-node-engines checks).
# npm ci runs again whenever the lock is newer than the install made from it
# (npm writes node_modules/.package-lock.json), so a changed pin is installed.
deps:
	@./tests/lib/install-deps.sh $(PKGS)
	@command -v npm >/dev/null 2>&1 || ./tests/lib/install-deps.sh nodejs npm
	@[ tests/js/node_modules/.package-lock.json -nt tests/js/package-lock.json ] || \
	    npm ci --prefix tests/js --no-audit --no-fund --silent

# The plain suite, then the same suite against an ASan+UBSan build, then
# every fuzz target for TEST_FUZZ_SECONDS on its committed corpus.
TEST_FUZZ_SECONDS ?= 10
test: deps
	@./tests/lib/install-deps.sh $(DEB_PKGS)
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory SANITIZE=address,undefined all unit
	@$(MAKE) --no-print-directory fuzz-build
	@HERALD_FUZZ_SECONDS=$(TEST_FUZZ_SECONDS) ./tests/run.sh build build-san

test-plain: deps
	@./tests/lib/install-deps.sh $(DEB_PKGS)
	@$(MAKE) --no-print-directory all unit
	@./tests/run.sh build

# The build after the packages, even under -j: the compiler may be among them.
run: deps-run
	@$(MAKE) --no-print-directory all
	@./php-client/demo/run.sh $(BUILD)/herald

FUZZ_SECONDS ?= 60
FUZZ_TARGETS = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS = -std=c11 -D_GNU_SOURCE -g -O1 $(INCS) -fsanitize=fuzzer,address,undefined

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(CORE_SRC) $(HEADERS)
	@mkdir -p build-fuzz
	clang $(FUZZ_FLAGS) -o $@ $< $(CORE_SRC) $(LIBS) -pthread

fuzz-build: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)

fuzz: deps fuzz-build
	@FUZZ_RUNS=$(FUZZ_RUNS) ./tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Benchmarks: never part of `make test`. Herald beside Nchan (Debian's
# libnginx-mod-nchan) and a Node ws server, plus the raw-write ceiling and
# the micro-benchmarks; bench/run.py prints the table (BENCH_QUICK=1: a
# short smoke run).
BENCH_PKGS   = libnginx-mod-nchan
BENCH_MICRO  = $(patsubst bench/%.c,build/bench/%,$(wildcard bench/bench_*.c))
BENCH_FLAGS  = -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -pthread
LOADGEN_SRC  = bench/loadgen.c $(wildcard bench/lg_*.c)

build/bench/bench_%: bench/bench_%.c build/libherald.a $(HEADERS) $(wildcard bench/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_FLAGS) $(INCS) -o $@ $< build/libherald.a $(LIBS) -pthread

build/bench/loadgen: $(LOADGEN_SRC) $(wildcard bench/lg_*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_FLAGS) -o $@ $(LOADGEN_SRC) -lssl -lcrypto

build/bench/rawsrv: bench/rawsrv.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_FLAGS) -o $@ $< -lcrypto

bench-build: build/herald $(BENCH_MICRO) build/bench/loadgen build/bench/rawsrv

bench: deps
	@./tests/lib/install-deps.sh $(BENCH_PKGS)
	@[ -d bench/peers/node/node_modules/ws ] || \
		npm ci --prefix bench/peers/node --no-audit --no-fund --silent
	@$(MAKE) --no-print-directory BUILD=build bench-build
	@/usr/bin/python3 bench/run.py
	@/usr/bin/python3 bench/cluster.py

# Only the several-nodes benchmark (issue #13: Herald nodes on one Redis beside
# Nchan on Redis); `make bench` runs it after run.py (BENCH_QUICK=1: 5 x 2,000).
.PHONY: bench-cluster
bench-cluster: deps
	@./tests/lib/install-deps.sh $(BENCH_PKGS)
	@$(MAKE) --no-print-directory BUILD=build bench-build
	@/usr/bin/python3 bench/cluster.py

clean:
	rm -rf build build-san build-fuzz

# Every C file; tests/structure/test_format.py checks the same list.
FORMAT_SRC = src/*.c lib/*/*.[ch] tests/*/*.[ch] bench/*.[ch]

format:
	clang-format -i $(wildcard $(FORMAT_SRC))

# `make install`: the daemon, its man page, the systemd units (pointed at
# SBINDIR), the PHP client on PHP's include path (require 'Herald/herald.php'
# finds its classes in Herald/src/ as in php-client/), herald.js and the nginx
# snippets in share/herald, the docs and examples. debian/rules runs it with
# PREFIX=/usr UNITDIR=/lib/systemd/system.
PREFIX   ?= /usr/local
SBINDIR  ?= $(PREFIX)/sbin
SHAREDIR ?= $(PREFIX)/share
UNITDIR  ?= $(PREFIX)/lib/systemd/system
DOCDIR   ?= $(SHAREDIR)/doc/herald

install: $(BUILD)/herald
	install -D -m 0755 $(BUILD)/herald $(DESTDIR)$(SBINDIR)/herald
	install -D -m 0644 man/herald.8 $(DESTDIR)$(SHAREDIR)/man/man8/herald.8
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SHAREDIR)/php/Herald/src \
	    $(DESTDIR)$(SHAREDIR)/herald/js $(DESTDIR)$(SHAREDIR)/herald/nginx \
	    $(DESTDIR)$(DOCDIR)/examples
	for u in herald.service herald@.service; do \
	    sed -e 's|/usr/local/bin/herald|$(SBINDIR)/herald|g' \
	        -e 's|^Documentation=.*|Documentation=man:herald(8)|' \
	        -e '/^#   \(install\|useradd\) /d' systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	install -m 0644 php-client/herald.php $(DESTDIR)$(SHAREDIR)/php/Herald/
	install -m 0644 php-client/src/*.php $(DESTDIR)$(SHAREDIR)/php/Herald/src/
	find php-client/js -maxdepth 1 -type f ! -name '*.test.*' \
	    -exec install -m 0644 {} $(DESTDIR)$(SHAREDIR)/herald/js/ \;
	install -m 0644 nginx/*.conf $(DESTDIR)$(SHAREDIR)/herald/nginx/
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 php-client/README.md $(DESTDIR)$(DOCDIR)/php-client.md
	install -m 0644 herald.ini.example $(DESTDIR)$(DOCDIR)/examples/
	cd deploy && find . -type f -exec install -D -m 0644 {} $(DESTDIR)$(DOCDIR)/examples/deploy/{} \;

# `make deb`: build/herald_VERSION-REV_ARCH.deb (and its -dbgsym) with
# debhelper, built from a copy of the tree in build/deb/src, since
# dpkg-buildpackage writes into the tree it builds and beside it. The upstream
# version must be HERALD_VERSION of lib/cfg/cfg.h. Installs debhelper and the
# missing build dependencies first. DEB_BUILD_OPTIONS=nocheck skips the unit
# tests the build runs. DEB_PKGS: what the package suite (tests/package) needs.
DEB_PKGS = debhelper lintian mmdebstrap

deb:
	@./tests/lib/install-deps.sh debhelper
	@v=$$(sed -n 's/^#define HERALD_VERSION "\(.*\)"/\1/p' lib/cfg/cfg.h); \
	    d=$$(dpkg-parsechangelog -S Version); [ "$${d%-*}" = "$$v" ] || \
	    { echo "debian/changelog is at $$d but lib/cfg/cfg.h says $$v:" \
	        "add a changelog entry for $$v-1" >&2; exit 1; }
	@m=$$(dpkg-checkbuilddeps 2>&1 | sed -n 's/.*Unmet build dependencies: //p' | \
	    sed 's/([^)]*)//g'); [ -z "$$m" ] || ./tests/lib/install-deps.sh $$m
	rm -rf build/deb build/herald_* build/herald-dbgsym_*
	mkdir -p build/deb/src
	tar -cf - --exclude=./build --exclude='./build-*' --exclude=./.git \
	    --exclude=node_modules . | tar -xf - -C build/deb/src
	cd build/deb/src && dpkg-buildpackage -b -us -uc
	mv build/deb/herald_* build/deb/herald-dbgsym_* build/
	@ls build/herald_*.deb
