# The two commands: `make up` (run it) and `make test` (test it). Everything else is a step of those.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .local/venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum localstack/requirements.txt | cut -c1-12)
CARGO ?= cargo

NODE_STAMP := frontend/node_modules/.installed-$(shell sha256sum frontend/package-lock.json | cut -c1-12)
CHROMIUM := /usr/bin/chromium

.PHONY: help up down token scenarios test lint unit build build-all integration venv frontend chromium screenshots bench bench-smoke chaos aws-build

help:
	@echo "make up     run the whole stack on a local AWS (MiniStack), seeded; writes .local/stack.json"
	@echo "            CHAOS='conflict:0.05,throttle:0.02' [CHAOS_SEED=s] arms the local AWS's faults (docs/CHAOS.md)"
	@echo "make down   stop what make up started"
	@echo "make scenarios   run the tester scenarios against the running stack (make up)"
	@echo "make token ROLE=admin|shopper   print an access token for a demo user of the running stack"
	@echo "make screenshots   screenshots of both pages from the running stack into docs/screenshots"
	@echo "make test   lint, unit tests, integration and browser tests, benchmark smoke run (own stacks)"
	@echo "make bench  run the benchmarks and rewrite docs/BENCHMARKS.md (a few minutes)"
	@echo "make chaos  the chaos workload under each local-AWS fault and all together, checked; rewrites docs/CHAOS.md (a few minutes)"
	@echo "make aws-build   sam validate --lint + sam build for AWS (arm64; ~5 min from a clean clone), checked against make up's build"

$(STAMP): localstack/requirements.txt
	@echo "==> installing the local AWS and test tools into $(VENV)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r localstack/requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

$(NODE_STAMP): frontend/package-lock.json
	@echo "==> installing the frontend toolchain (npm ci)"
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

frontend: $(NODE_STAMP)
	@echo "==> building the frontend (TypeScript check + Vite)"
	cd frontend && npm run --silent build

# Debian's Chromium for the browser tests (playwright-core cannot download a browser here).
chromium:
	@test -x $(CHROMIUM) || { echo "==> installing Debian's chromium"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# `make up` builds the functions only; the tests and benchmarks also need their own crates
# (tests/panic_probe, bench/hello_lambda), built into the same target directory.
FUNCTIONS := $(notdir $(wildcard functions/*))

build:
	@echo "==> building the functions (release; a cold build takes about 4 minutes on 2 cores)"
	$(CARGO) build --release --locked $(addprefix -p ,$(FUNCTIONS))

# With every target (tests, benchmarks), so in the feature set `make unit` builds the SDK with: the
# tests' dev-dependencies turn on the SDK's `test-util` helpers, and a build without them would
# compile the whole SDK a second time (7 minutes of `make test`). The functions' binaries are the
# same code as `make up`'s, with those helpers linked in and never called (docs/BUILD.md).
build-all:
	@echo "==> building the functions and the test and benchmark crates (release, the unit tests' features)"
	$(CARGO) build --release --workspace --all-targets --locked

# The three preparations run side by side: pip and npm mostly wait on the network while cargo
# uses the cores (a cold make up is that much shorter).
up:
	@$(MAKE) --no-print-directory -j3 venv build frontend
	$(PY) -m localstack.stack up$(if $(CHAOS), --chaos '$(CHAOS)')$(if $(CHAOS_SEED), --chaos-seed '$(CHAOS_SEED)')

down: venv
	$(PY) -m localstack.stack down

scenarios: venv
	$(PY) -m localstack.scenarios.run_all

# Screenshots of both pages (desktop and phone width) from the local stack (brought up to date), into docs/screenshots.
screenshots: up chromium
	cd frontend && SCREENSHOT_DIR=../docs/screenshots node --test --test-concurrency=1 \
	  --test-name-pattern="seeded availability|admin sees every item" tests/

ROLE ?= admin
token: venv
	@$(PY) -m localstack.stack token $(ROLE)

lint: venv
	@echo "==> lint: rustfmt, clippy, cfn-lint, MiniStack fidelity fingerprints"
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets --locked -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml
	$(PY) localstack/ministack_faithful.py --check

# Unit tests in the release profile: `build-all` (the binaries the integration tests deploy) and the
# benchmarks' criterion build (bench-smoke) have the same features and reuse its build of the SDK; a
# dev-profile unit build would be one more build of the SDK.
unit:
	@echo "==> unit tests (use cases through the in-memory store, domain rules, SDK error mapping)"
	$(CARGO) test --release --workspace --locked

# Chromium's apt install and npm wait on the network while cargo builds: side by side, as in `up`.
# The suite runs in three parts side by side, each with a MiniStack and a stack of its own: the tests
# mostly wait on streams, TTL and quiet periods, so on 2 cores three parts take about a third as long.
# Each part's lines are prefixed with its number; `pytest tests` alone runs the whole suite as one.
INTEGRATION_PARTS := 1 2 3

integration:
	@$(MAKE) --no-print-directory -j3 venv build-all frontend chromium
	@echo "==> integration, scenario and browser tests: $(words $(INTEGRATION_PARTS)) parts, each on its own MiniStack (free port) and stack, stopped at the end"
	@$(MAKE) --no-print-directory -j$(words $(INTEGRATION_PARTS)) $(addprefix integration-part-,$(INTEGRATION_PARTS))

integration-part-%:
	$(PY) -m pytest tests -p no:cacheprovider --durations=10 --part $*/$(words $(INTEGRATION_PARTS)) 2>&1 | sed -u 's/^/[part $*] /'

# Benchmarks: a stack of their own; `bench` rewrites docs/BENCHMARKS.md, the smoke run only checks they work.
bench: venv build-all frontend
	$(PY) -m bench.run

bench-smoke: venv build-all frontend
	@echo "==> benchmark smoke run (tiny sizes; figures not kept)"
	$(PY) -m bench.run --smoke --out .local/bench-smoke.md

# The chaos workload under every fault, each run's history checked (linearizability, invariants at
# rest); a stack of its own; rewrites the results of docs/CHAOS.md. FAULTS=kill,conflict SEED=... replays.
chaos: venv build frontend
	$(PY) -m bench.chaos$(if $(FAULTS), --faults '$(FAULTS)')$(if $(SEED), --seed '$(SEED)')

test: lint unit integration bench-smoke

# What `sam build` ships to AWS (arm64), checked to be built as `make up` and `make test` build:
# sam validate --lint, sam build with every cargo command recorded, then the artifacts and the
# profile are checked (localstack/aws_build.py). Not part of `make test`: a second full build.
AWS_VENV := .local/aws-build
AWS_STAMP := $(AWS_VENV)/.installed-$(shell sha256sum localstack/aws-build-requirements.txt | cut -c1-12)

$(AWS_STAMP): localstack/aws-build-requirements.txt
	@echo "==> installing aws-sam-cli, cargo-lambda and ziglang into $(AWS_VENV)"
	python3 -m venv $(AWS_VENV)
	$(AWS_VENV)/bin/pip install --quiet --disable-pip-version-check -r localstack/aws-build-requirements.txt
	rm -f $(AWS_VENV)/.installed-*
	touch $@

aws-build: $(AWS_STAMP)
	@rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	$(AWS_VENV)/bin/python localstack/aws_build.py
