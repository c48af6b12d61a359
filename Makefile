# Chat and bookstore backend inside nginx.
#
#   make            build the nginx module (.so) and the backend worker pool
#   make run        the whole local stack in the foreground, Ctrl-C stops it
#   make start      the same stack in the background;  make stop  stops it
#   make test       install, build, and run every test on a separate stack
#   make test-faults  the long fault-injection run (each fault 5 times), ~6 min
#   make test-soak  live delivery in bursts with reconnects, no faults, ~5 min
#   make test-browser the web app in headless Chromium on its own stack, ~30 s
#   make test-asan  the integration tests against an ASan/UBSan module+backend
#   make fuzz       fuzz each harness (tests/fuzz) for 5 minutes
#   make bench      figures: latency, memory per connection, commit rate
#   make clean      remove build output (keeps .run/ data; see clean-data)
#
# Warnings are errors everywhere (nginx builds with -Werror; so do we).

SHELL        := /bin/bash
ROOT         := $(CURDIR)
BUILD        := $(ROOT)/build
NGINX_BUILD  := $(BUILD)/nginx
MODULE_SO    := $(NGINX_BUILD)/objs/ngx_chat_module.so
BACKEND_BIN  := backend/chat-backend
MODULE_SRCS  := $(wildcard ngx_chat_module/*.c ngx_chat_module/*.h \
                  protocol/*.c protocol/*.h) config

.PHONY: all module backend deps run start stop test test-unit \
        test-integration test-faults test-soak test-browser test-asan asan fuzz bench bench-quick bench-isolation clean clean-data

all: module backend

deps:
	@conf/deps.sh

module: $(MODULE_SO)

$(NGINX_BUILD)/objs/Makefile: config
	conf/build-module.sh $(NGINX_BUILD)

$(MODULE_SO): $(NGINX_BUILD)/objs/Makefile $(MODULE_SRCS)
	$(MAKE) -C $(NGINX_BUILD) -f objs/Makefile modules

backend:
	$(MAKE) -C backend

# the same module and backend built with AddressSanitizer + UBSan, apart
# from the normal build (build/asan/), for make test-asan
ASAN_BUILD := $(BUILD)/asan
ASAN_SO    := $(ASAN_BUILD)/nginx/objs/ngx_chat_module.so
SAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer

asan: $(ASAN_SO)
	$(MAKE) -C backend asan

$(ASAN_BUILD)/nginx/objs/Makefile: config
	conf/build-module.sh $(ASAN_BUILD)/nginx \
	    --with-cc-opt="$(SAN_FLAGS)" --with-ld-opt="$(SAN_FLAGS)"

$(ASAN_SO): $(ASAN_BUILD)/nginx/objs/Makefile $(MODULE_SRCS)
	$(MAKE) -C $(ASAN_BUILD)/nginx -f objs/Makefile modules

run: deps all
	@conf/stack.sh run

start: deps all
	@conf/stack.sh start

stop:
	@conf/stack.sh stop

test: deps all
	@tests/run.sh

test-unit: all
	@tests/run.sh unit

test-integration: deps all
	@tests/run.sh integration

test-faults: deps all
	@tests/run.sh faults

# SOAK_SECONDS (default 300) and SOAK_USERS (default 10) size it
test-soak: deps all
	@tests/run.sh soak

# the browser suite alone (also part of make test) (tests/browser/README.md)
test-browser: deps all
	@tests/run.sh browser

test-asan: deps all asan
	@ASAN=1 tests/run.sh integration

# the benchmark on its own side stack (ports 18484/16494/15494, nchan 18485);
# about 5 minutes, figures printed beside same-run references
# (tests/bench/README.md)
bench: deps all
	@tests/bench/bench.sh full

# the same pipeline with small numbers, about 1.5 minutes
bench-quick: deps all
	@tests/bench/bench.sh quick

# figure 7 alone: chat p99 alone, during a sign-up burst and during
# checkouts against a 300 ms processor, as ratios (~1 minute)
bench-isolation: deps all
	@tests/bench/isolation.sh full

# each libFuzzer harness in turn, SECONDS each (300 by default); a make
# variable, not ${SECONDS:-300}: bash always sets SECONDS (0 at start), and
# libFuzzer reads -max_total_time=0 as "no limit"
fuzz:
	$(MAKE) -C tests/fuzz run SECONDS=$(or $(SECONDS),300)

clean:
	rm -rf $(BUILD) tests/unit/bin
	$(MAKE) -C backend clean
	$(MAKE) -C tests/bench clean

clean-data: stop
	rm -rf .run

# ---- install, packages, lint ----------------------------------------------
# make install DESTDIR=... PREFIX=... (PREFIX /usr/local by default): the
# module, its load snippet and sample site, and the backend with its man
# page, unit, settings and migrations, laid out as the Debian packages lay
# them out (debian/README.md).  Builds with the caller's CFLAGS.
PREFIX            ?= /usr/local
SYSCONFDIR        ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
NGINX_MODULES_DIR ?= $(PREFIX)/lib/nginx/modules
SYSTEMD_UNIT_DIR  ?= $(PREFIX)/lib/systemd/system
VERSION           := $(shell sed -n 's/^\#define CHAT_VERSION  *"\(.*\)"/\1/p' protocol/chat_version.h)

.PHONY: install install-module install-backend deb test-package lint

install: install-module install-backend

install-module: module
	install -d $(DESTDIR)$(NGINX_MODULES_DIR) \
	    $(DESTDIR)$(PREFIX)/share/nginx/modules-available \
	    $(DESTDIR)$(PREFIX)/share/doc/libnginx-mod-http-chat/examples
	install -m 0644 $(MODULE_SO) $(DESTDIR)$(NGINX_MODULES_DIR)/
	echo "load_module $(NGINX_MODULES_DIR)/ngx_chat_module.so;" \
	    > $(DESTDIR)$(PREFIX)/share/nginx/modules-available/mod-http-chat.conf
	install -m 0644 conf/chat-site.conf \
	    $(DESTDIR)$(PREFIX)/share/doc/libnginx-mod-http-chat/examples/

install-backend: backend
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/chat-backend/sql \
	    $(DESTDIR)$(SYSTEMD_UNIT_DIR) $(DESTDIR)$(SYSCONFDIR)/chat-backend
	install -m 0755 $(BACKEND_BIN) $(DESTDIR)$(PREFIX)/sbin/
	install -m 0644 backend/chat-backend.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 sql/[0-9][0-9][0-9]_*.sql $(DESTDIR)$(PREFIX)/share/chat-backend/sql/
	install -m 0755 sql/migrate.sh $(DESTDIR)$(PREFIX)/share/chat-backend/sql/
	sed 's|/usr/sbin/chat-backend|$(PREFIX)/sbin/chat-backend|; s|/etc/chat-backend|$(SYSCONFDIR)/chat-backend|' \
	    conf/chat-backend.service > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/chat-backend.service
	sed 's|/etc/chat-backend|$(SYSCONFDIR)/chat-backend|' conf/chat-backend.conf \
	    > $(DESTDIR)$(SYSCONFDIR)/chat-backend/chat-backend.conf
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/chat-backend.service \
	    $(DESTDIR)$(SYSCONFDIR)/chat-backend/chat-backend.conf

# the two .deb files in build/deb/, built with dpkg-buildpackage from a
# copy of the tree (so the dev build in build/ is left alone)
deb:
	@conf/deps.sh debhelper dpkg-dev fakeroot
	@conf/deb.sh

# build (make deb), install, run, purge the packages (tests/package/README.md)
test-package: deps
	@tests/run.sh package

# cppcheck and shellcheck, both clean
lint:
	@conf/deps.sh
	@conf/lint.sh
