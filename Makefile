# rnnbench: `make demo` (the first result) or `make test`; each installs first when needed. See README.md.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
GPU    ?=
comma  := ,
EXTRAS := dev$(if $(GPU),$(comma)$(GPU))
# the install's stamp: newer than pyproject.toml while the environment is current
STAMP  := $(VENV)/.installed
ifneq ($(filter-out cuda12 cuda13,$(GPU)),)
$(error GPU must be cuda12 or cuda13, got '$(GPU)')
endif

.PHONY: install test test-fast lint bench demo reproduce reproduce-smoke results

define INSTALL
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)
endef

install:  ## GPU=cuda12 or GPU=cuda13 adds jax's CUDA plugin (a GPU box); always reinstalls
	$(INSTALL)

# what every other target needs first: the install, skipped while the environment is current
$(STAMP): pyproject.toml
	$(INSTALL)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)  ## the suite without the tests marked slow (end-to-end runs and the heaviest checks): about 2 minutes on 2 cores
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check rnnbench tests scripts

bench: $(STAMP)
	$(BIN)/python scripts/bench_tokenizer.py
	$(BIN)/python scripts/bench_synthetic.py

demo: $(STAMP)  ## the quickstart: linear vs GRU on the synthetic corpus, CPU, a few minutes
	$(BIN)/rnnbench compare configs/quickstart.yaml

reproduce: $(STAMP)  ## every talk config at full size on this machine, then one report (hours on CPU)
	scripts/reproduce_talk.sh

reproduce-smoke: $(STAMP)  ## the same chain at smoke sizes (minutes; CI runs it)
	scripts/reproduce_talk.sh --smoke

results:  ## every published table and plot rebuilt from the archives in results/ (no training, no data)
	$(BIN)/python scripts/build_results.py
