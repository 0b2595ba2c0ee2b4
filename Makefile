# nfbench: every target builds the virtual environment the first time it runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: venv bench test report check lint compare diagnose gpu-check clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch torchvision
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,reference,cluster]"
	touch $(STAMP)

bench: venv
	$(BIN)/nfbench run --config bench
	$(BIN)/nfbench report

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(BIN)/nfbench check

report: venv
	$(BIN)/nfbench report

check: venv
	$(BIN)/nfbench check

# every native model and strategy on CUDA; exits non-zero if any cell fails
gpu-check: venv
	$(BIN)/nfbench run --config gpu-check --strict

compare: venv
	$(BIN)/nfbench compare

diagnose: venv
	$(BIN)/nfbench diagnose

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf results .cache/nfbench/features
