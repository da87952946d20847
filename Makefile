# geoplat: `make up` serves the demo federation, `make test` runs the suite.
# Both install what is missing first: apt packages, a venv in .venv, pip and npm packages.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting postgresql-contrib gdal-bin nginx-light \
	fonts-wqy-zenhei fonts-noto-cjk redis-server wrk python3-venv iproute2 chromium \
	python3-qgis qgis-providers acl poppler-utils
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install apt node user venv npm sdk up down status test test-js bench bench-places-deps bench-places clean-var lint

install: apt $(VENV)/.installed node_modules/.installed sdk user

# apt-get install the Debian packages of $(1) that are missing (nothing when all are there)
define apt_install
	@missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "apt: installing$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

apt:
	$(call apt_install,$(APT_PACKAGES))

# As root: the unprivileged user `geoplat up` drops to (nodes/privileges.py), allowed to read
# the checkout and to enter (only) every parent directory of it, of the venv and of the Python
# interpreter; `postgres` likewise enters the parents of var/pg. A checkout under `mktemp -d`
# (0700) works so. Idempotent; a non-root operator's nodes run as the operator (nothing to do).
RUN_USER ?= geoplat
user:  # after the venv (install lists it last): it grants access to the interpreter
	@if [ "$$(id -u)" = 0 ]; then \
		id -u $(RUN_USER) >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin $(RUN_USER); \
		setfacl -m u:$(RUN_USER):rx "$(CURDIR)" 2>/dev/null || chmod o+rx "$(CURDIR)"; \
		for p in "$(CURDIR)" "$$(readlink -f $(BIN)/python)" "$$(readlink -f $(VENV))"; do \
			d="$$p"; while [ "$$d" != / ]; do d="$$(dirname "$$d")"; \
				for u in $(RUN_USER) postgres; do id -u $$u >/dev/null 2>&1 || continue; \
					setfacl -m u:$$u:x "$$d" 2>/dev/null || chmod o+x "$$d"; done; \
			done; \
		done; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	@touch $@

# node and npm: Debian's `nodejs` and `npm` for what `command -v` lacks (a nodesource nodejs
# already bundles npm, and Debian's npm would conflict with it)
node:
	@missing=""; command -v node >/dev/null || missing="nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "apt: installing $$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

node_modules/.installed: package.json package-lock.json | node
	npm install --no-audit --no-fund --silent
	@mkdir -p node_modules && touch $@

# the JavaScript SDK (services/web/sdk): esbuild bundles and tsc declarations in dist/
SDK := services/web/sdk
SDK_SOURCES := $(shell find $(SDK)/src -name '*.js' 2>/dev/null) $(SDK)/build.mjs
sdk: $(SDK)/dist/geoplat.js

$(SDK)/dist/geoplat.js: node_modules/.installed $(SDK_SOURCES)
	node $(SDK)/build.mjs
	@touch $@

up: install
	$(BIN)/geoplat up

down:
	$(BIN)/geoplat down

status:
	$(BIN)/geoplat status

# the JS unit tests and the Python suite; fails if either fails (both run)
test: install
	@rc=0; node --test $(SDK)/test/*.test.mjs || rc=1; \
	$(BIN)/python -m pytest $(PYTEST_ARGS) || rc=1; exit $$rc

test-js: node_modules/.installed
	node --test $(SDK)/test/*.test.mjs

bench: install
	$(BIN)/python bench/features.py
	$(BIN)/python bench/tiles.py

# What bench/places.py needs besides the project (not part of `make up`/`make test`): Debian's
# osm2pgsql for Nominatim's import, and Nominatim in a venv of its own (it pins psycopg 3,
# SQLAlchemy 2 and PyICU, none of them ours; PyICU builds against libicu-dev).
NOMINATIM_VENV := bench/.venv-nominatim
NOMINATIM_PINS := nominatim-db==5.3.3 nominatim-api==5.3.3 starlette==1.10.0 'uvicorn[standard]==0.54.0'
BENCH_PLACES_APT := osm2pgsql libicu-dev pkg-config g++
bench-places-deps:
	$(call apt_install,$(BENCH_PLACES_APT))
	@test -x $(NOMINATIM_VENV)/bin/python || $(PYTHON) -m venv $(NOMINATIM_VENV)
	$(NOMINATIM_VENV)/bin/pip install -q $(NOMINATIM_PINS)

bench-places: install bench-places-deps
	$(BIN)/python bench/places.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
