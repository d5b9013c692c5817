# Two entry points: `make demo` and `make test`. Both build the same .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	@echo "==> [1/3] creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is installed first and pinned exactly. The CPU build comes from the index pip is set up
# with (this machine's pip finds it locally); where pip would find PyPI's CUDA build instead, set
# TORCH_INDEX=https://download.pytorch.org/whl/cpu. The two big installs print pip's progress.
TORCH_INDEX ?=
$(STAMP): $(BIN)/python pyproject.toml
	@echo "==> [2/3] installing torch 2.13.0 (the largest download)"
	$(BIN)/pip install --progress-bar on $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "torch==2.13.0"
	@echo "==> [3/3] installing prodcat and its dependencies (image, deep, serve, dev)"
	$(BIN)/pip install --progress-bar on -e ".[all,dev]"
	@echo "==> installed: $(BIN)/prodcat"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/prodcat demo

test: install
	$(BIN)/python -m pytest -n 2 -q

bench: install
	$(BIN)/python benchmarks/text.py --data ../shared/data/rakuten_en/train.csv

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
