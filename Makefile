# nfbench: every target builds the virtual environment the first time it runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: venv bench routing test report check lint compare diagnose gpu-check clean

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

# routing and parameter isolation (benchmarks/presets/routing.toml): the task-agnostic rows with
# their oracle-routing twins, IsoFlow against replay and joint, and its ablation, 3 seeds, on
# the bench scenario and synthetic:3x2, into the bench's results (about 40 min on 2 CPU cores)
ROUTING := $(BIN)/nfbench run --config routing
ABLATIONS := "--isoflow.alignment false" "--isoflow.aux-blocks 0" "--isoflow.tail-weight 0"
routing: venv
	$(ROUTING) && $(ROUTING) --task-aware
	$(ROUTING) --models hgad --strategies finetune
	$(ROUTING) --models hgad --strategies finetune --task-aware
	$(ROUTING) --models isoflow --strategies replay joint
	for flag in $(ABLATIONS); do \
	  $(ROUTING) --models isoflow --scenario synthetic:6x1 $$flag && \
	  $(ROUTING) --models isoflow --scenario synthetic:6x1 $$flag --task-aware || exit 1; done
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
