# geoplat: `make up` serves the demo federation, `make test` runs the suite.
# Both install what is missing first: apt packages, a venv in .venv, pip and npm packages.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := postgresql-15 postgresql-15-postgis-3 postgresql-contrib gdal-bin nginx-light \
	fonts-wqy-zenhei fonts-noto-cjk redis-server wrk python3-venv iproute2 chromium \
	python3-qgis qgis-providers
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install apt venv npm up down status test bench clean-var lint

install: apt $(VENV)/.installed node_modules/.installed

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "apt: installing$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

node_modules/.installed: package.json
	@if command -v npm >/dev/null; then npm install --no-audit --no-fund --silent; \
	else echo "npm not found: HTML pages will lack maps (apt-get install npm)"; fi
	@mkdir -p node_modules && touch $@

up: install
	$(BIN)/geoplat up

down:
	$(BIN)/geoplat down

status:
	$(BIN)/geoplat status

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/features.py
	$(BIN)/python bench/tiles.py

lint:
	$(BIN)/ruff check nodes layers tiles services tests bench
