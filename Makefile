# The two commands: `make run` (set up, then run the pipeline) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# cpu: tensorflow-cpu (small, no CUDA); gpu: tensorflow with CUDA libraries.
EXTRA ?= cpu
# The hashed lock of that environment (every package, by version and SHA-256), which
# `make lock` writes from pyproject.toml and `make setup` installs.
LOCK := requirements/$(EXTRA).txt
LOCKED_EXTRAS := cpu gpu
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# DVC runs each stage's `python` from PATH: make it the virtualenv's.
export PATH := $(BIN):$(PATH)
SYSTEM_DATA := /usr/share/datasets/fashion-mnist
# Root runs apt-get directly; anyone else through sudo, if it needs no password.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

# The git revision the gate and CI compare with.
AGAINST ?= main
BASE ?= main
REPORT ?= ci-report.md
# The report's pictures, linked from $(REPORT) by relative paths.
REPORT_FOLDER ?= ci-report
# The DVC remote `make push` and `make pull` use (empty: the default remote).
REMOTE ?=
# RUN_CACHE=1: `make pull` also fetches DVC's run-cache, every run `make push` sent.
RUN_CACHE ?=
# Seeds `make bench` trains the default params with (mean and minimum are reported).
SEEDS ?= 1

.PHONY: help setup lock system-packages test-packages run test lint docs docs-serve bench gate release ci ci-report experiments push pull clean

# The variables the targets' descriptions name, shown with their values: the defaults above,
# or what the command line sets (`make help REPORT=report.md`).
HELP_VARIABLES := AGAINST BASE EXTRA LOCK REPORT REPORT_FOLDER SEEDS

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) \
	  | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}' \
	  | sed $(foreach name,$(HELP_VARIABLES),-e 's|$$($(name))|$($(name))|g')

setup: $(VENV)/.installed system-packages ## Create .venv from the hashed lock $(LOCK) (EXTRA=gpu: requirements/gpu.txt); install Debian's Fashion-MNIST

# Every package comes from $(LOCK) and must match its SHA-256 there. First the lock's own pip
# and setuptools replace the venv's bundled ones (which may be years old); the rest is then
# installed without build isolation, so that building a source-only package (antlr4) uses the
# locked setuptools rather than whatever is newest that day. The project itself comes last,
# editable, without touching the pins.
$(VENV)/.installed: $(LOCK) pyproject.toml
	@version=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	case "$$version" in \
	  3.11|3.12|3.13) ;; \
	  "") echo "error: $(PYTHON) does not run; make setup needs Python 3.11 to 3.13 (PYTHON=...)"; exit 1;; \
	  *) echo "error: $(PYTHON) is Python $$version, expected 3.11 to 3.13 (TensorFlow 2.21's" \
	       "wheels, pyproject.toml's requires-python): make setup PYTHON=python3.12, say"; exit 1;; \
	esac
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || $(MAKE) --no-print-directory apt-install PACKAGES=python3-venv
	$(PYTHON) -m venv $(VENV)
	awk '/^(pip|setuptools)==/ {keep = 1} keep {print} keep && !/\\$$/ {keep = 0}' $(LOCK) \
	  > $(VENV)/installers.txt
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(VENV)/installers.txt
	$(BIN)/python -m pip install --quiet --require-hashes --no-build-isolation -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

requirements/%.txt:
	@echo "error: $@ not found: EXTRA must be one of $(LOCKED_EXTRAS) (make lock writes their locks)"; exit 1

# Each lock is written to a temporary file and moved into place only when it differs: a lock
# that did not change keeps its time, so the next `make setup` does not reinstall .venv.
lock: $(VENV)/.installed ## After editing pyproject.toml: resolve it into uv.lock and requirements/{cpu,gpu}.txt
	$(BIN)/uv lock
	@mkdir -p requirements
	@for extra in $(LOCKED_EXTRAS); do \
	  echo "uv export --extra $$extra --extra dev > requirements/$$extra.txt"; \
	  $(BIN)/uv export --format requirements-txt --extra $$extra --extra dev \
	    --no-emit-project --frozen > requirements/$$extra.txt.tmp || exit 1; \
	  if cmp -s requirements/$$extra.txt.tmp requirements/$$extra.txt; then \
	    rm requirements/$$extra.txt.tmp; \
	  else \
	    mv requirements/$$extra.txt.tmp requirements/$$extra.txt || exit 1; \
	  fi; \
	done

system-packages: ## Install Debian's dataset-fashion-mnist where apt can be used (else: public mirrors)
	@if [ ! -d $(SYSTEM_DATA) ]; then \
	  $(MAKE) --no-print-directory apt-install PACKAGES=dataset-fashion-mnist \
	    || echo "warning: could not install dataset-fashion-mnist; the download stage will use the public mirrors"; \
	fi

test-packages: ## Install Debian's chromium and openssh-server where apt can be used, for the plots page and SSH remote tests
	@command -v chromium >/dev/null || $(MAKE) --no-print-directory apt-install PACKAGES=chromium \
	  || echo "warning: could not install chromium; the test of dvc plots' page will be skipped"
	@# The tests start their own sshd on 127.0.0.1. The package's own service (port 22, every
	@# address; Ubuntu's ssh.socket), which apt starts where systemd runs, was not there before:
	@# stopped and disabled.
	@test -x /usr/sbin/sshd || { $(MAKE) --no-print-directory apt-install PACKAGES=openssh-server \
	  && { for unit in ssh.socket ssh.service; do \
	         $(SUDO) systemctl disable --now $$unit 2>/dev/null; done; true; }; } \
	  || echo "warning: could not install openssh-server; the tests of an SSH remote will be skipped"

# Only the packages named and what they depend on: no recommended extras (on Debian 12,
# chromium with them was 115 new packages and 15 upgrades, systemd and perl among them;
# without, 25 new and none upgraded), and no upgrade of a named package already installed.
# apt still upgrades a dependency when a package needs a newer version of it.
.PHONY: apt-install
apt-install:
	@command -v apt-get >/dev/null || { echo "apt-get not found: install $(PACKAGES) by hand"; exit 1; }
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-upgrade --no-install-recommends $(PACKAGES)

run: setup ## Set up, then run the whole pipeline with dvc repro
	dvc repro

# Three processes, each taking whole test files (a file's module fixtures are made once):
# most tests wait on dvc, git, a server or a stage in a subprocess, so one process leaves a
# core idle, and two still left 16% of the two cores' time unused (three: 9%; measured in
# one fresh clone, 11 min 34 s with two, 10 min 40 s with three).
TEST_PROCESSES ?= 3

test: setup test-packages ## Run the test suite (unit tests and end-to-end runs of dvc), in three processes
	python -m pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

lint: setup ## Check the code with ruff, the GitHub workflows with zizmor (offline), the docs with mkdocs --strict
	ruff check src stages tests bench docs/hooks
	zizmor --offline --min-severity medium .github/workflows/
	@# Not --quiet: with it, MkDocs 1.6 no longer counts warnings and --strict passes anything.
	mkdocs build --strict

# Material's banner about MkDocs 2 on every build: the pins decide when to move, not a banner.
export NO_MKDOCS_2_WARNING := 1
# The site's reference pages are written from the code at each build (docs/hooks/reference.py).
docs: setup ## Build the documentation site into site/ (mkdocs build --strict: no broken link, no page outside the navigation)
	mkdocs build --strict

DOCS_ADDRESS ?= 127.0.0.1:8000

docs-serve: setup ## Serve the documentation site on DOCS_ADDRESS (default 127.0.0.1:8000), rebuilt as docs/ changes
	mkdocs serve --strict --dev-addr $(DOCS_ADDRESS)

bench: setup ## Every speed goal against the tutorial's code in one run (SEEDS=$(SEEDS); 3: the default with 3 seeds); bench/results.json
	python -m bench --seeds $(SEEDS)

gate: setup ## Compare the metrics with those at AGAINST=$(AGAINST); fail if one got worse or below the bar
	mnistpipe gate --against $(AGAINST)

release: setup ## Register the model as VERSION (e.g. VERSION=1.2.0, STAGE=prod) with GTO, if the bar passes and all is committed
	mnistpipe release $(VERSION) $(if $(STAGE),--stage $(STAGE))

ci: setup ## What CI runs on a pull request: make test, then make ci-report against BASE=$(BASE)
	$(MAKE) --no-print-directory test
	$(MAKE) --no-print-directory ci-report BASE=$(BASE)

ci-report: setup ## dvc repro; params, metrics, gate, pictures and flipped images against BASE=$(BASE) into $(REPORT) and $(REPORT_FOLDER)/
	dvc repro
	@rm -rf $(REPORT_FOLDER)
	@{ echo "## Params against \`$(BASE)\`"; echo; \
	   diff=$$(dvc params diff $(BASE) --md) && echo "$${diff:-No change.}"; echo; \
	   echo "## Metrics against \`$(BASE)\`"; echo; \
	   diff=$$(dvc metrics diff $(BASE) --md) && echo "$${diff:-No change.}"; echo; \
	   echo "## Gate"; echo; } > $(REPORT)
	@mnistpipe gate --against $(BASE) >> $(REPORT); status=$$?; \
	  echo >> $(REPORT); \
	  python -m mnistpipe.report --base $(BASE) --folder $(REPORT_FOLDER) >> $(REPORT) || status=1; \
	  cat $(REPORT); \
	  if [ -n "$${GITHUB_STEP_SUMMARY:-}" ]; then cat $(REPORT) >> "$$GITHUB_STEP_SUMMARY"; fi; \
	  exit $$status

experiments: setup ## DVC's experiments, a line each: test accuracy, loss, macro F1, the bar, validation accuracy, params that differ
	mnistpipe experiments

push: setup ## dvc push to REMOTE (default: the default remote), mending what it holds cut short; VERIFY=1 re-hashes all
	python -m mnistpipe.remote push $(if $(REMOTE),--remote $(REMOTE)) $(if $(VERIFY),--verify)

pull: setup ## dvc pull from REMOTE (default: the default remote); checks out only what hashes right; RUN_CACHE=1 adds every run make push sent
	python -m mnistpipe.remote pull $(if $(REMOTE),--remote $(REMOTE)) $(if $(RUN_CACHE),--run-cache)

clean: ## Remove the pipeline's outputs (DVC's cache stays; `dvc checkout` restores them)
	rm -rf data/raw data/prepared models logs plots/predictions.csv
