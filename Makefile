# Set-up and everyday commands. Everything runs inside .venv, created on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow bench venv clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[all]"
	touch $@

# PyTorch is the dev-only test oracle (tests/layers/test_layers_vs_torch.py), and the backend of the Keras 3
# oracle (tests/keras_oracle.py, KERAS_BACKEND=torch): installed when the package
# index has it, else those tests skip with a reason and the committed golden vectors still run.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q "torch==2.13.0" \
		|| echo "note: torch==2.13.0 not installable here; the PyTorch-oracle tests will skip"
	$(BIN)/python -m pip install -q "captum==0.9.*" \
		|| echo "note: captum not installable here; the explain-benchmark test will skip"
	touch $@ $(VENV)/.installed-all

venv: $(VENV)/.installed-all

## make demo: train the default model on the default dataset, write runs/demo/ (model, history, plot, report)
demo: $(VENV)/.installed-all
	bash scripts/system-deps.sh
	$(BIN)/glassnet demo --out runs/demo

## make test: install the dev extras and run the whole suite (slow accuracy runs excluded)
test: $(VENV)/.installed-dev
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest -q --timeout=900

## make test-slow: the long accuracy runs only
test-slow: $(VENV)/.installed-dev
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest -q -m slow --timeout=5400

## make bench: glassnet vs PyTorch CPU speed (training steps, the depthwise op), and explanations vs Captum
## (installs the bench extra)
bench: $(VENV)/.installed-dev
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.depthwise
	$(BIN)/python -m benchmarks.explain

clean:
	rm -rf $(VENV) runs build *.egg-info
