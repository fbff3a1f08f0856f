# Two entry points a new user needs: `make demo` and `make test`. Both build .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench system-deps check-wheel clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	@# pip warns about this machine's optional local index folders; keep real errors visible.
	set -o pipefail; $(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,postgres,export,tensorboard,dashboard]' 2>&1 \
	  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	touch $@

# Debian packages the data/scale-out features use; installed only where apt-get is usable (root).
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  pkgs=""; \
	  [ -d /usr/share/datasets/fashion-mnist ] || pkgs="$$pkgs dataset-fashion-mnist"; \
	  command -v pg_ctlcluster >/dev/null || [ -d /usr/lib/postgresql ] || pkgs="$$pkgs postgresql"; \
	  if [ -n "$$pkgs" ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null) \
	      || echo "note: could not install$$pkgs; features needing them fall back or skip"; \
	  fi; \
	fi

# The main job on embedded defaults: profile CoAtNet-0, then a short search with a SQLite study.
demo: $(STAMP) system-deps
	$(BIN)/coatnet build specs/coatnet0.yaml --profile
	@mkdir -p runs/demo
	data=$$([ -d /usr/share/datasets/fashion-mnist ] && echo fashion-mnist || echo synthetic); \
	$(BIN)/coatnet search --budget 4GFLOPs --trials 4 --dataset $$data \
	  --storage sqlite:///runs/demo/search.db --study demo-$$data --out runs/demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_cost.py
	$(BIN)/python benchmarks/bench_search.py

lint: $(STAMP)
	$(BIN)/ruff check coatnet_nas tests benchmarks
	$(BIN)/ruff format --check coatnet_nas tests benchmarks
	@# Import contracts (pyproject.toml [tool.importlinter]): cli imported by nobody, layers.
	$(BIN)/lint-imports --no-logo --no-cache

# What CI runs after the tests: build the wheel, install it in a fresh venv, run the main commands.
check-wheel:
	bash .ci/check-wheel

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.db
