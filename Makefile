# rnnbench: `make install` then `make test`. See README.md.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install test lint bench demo reproduce reproduce-smoke

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'

test:
	$(BIN)/python -m pytest -q

lint:
	$(BIN)/ruff check rnnbench tests scripts

bench:
	$(BIN)/python scripts/bench_tokenizer.py
	$(BIN)/python scripts/bench_synthetic.py

demo:  ## the quickstart: linear vs GRU on the synthetic corpus, CPU, a few minutes
	$(BIN)/rnnbench compare configs/quickstart.yaml

reproduce:  ## every talk config at full size on this machine, then one report (hours on CPU)
	scripts/reproduce_talk.sh

reproduce-smoke:  ## the same chain at smoke sizes (minutes; CI runs it)
	scripts/reproduce_talk.sh --smoke
