# edgefold: `make demo` trains, folds and deploys resnet8 to the emulated Nano 33 BLE (QEMU), `make test` runs the whole suite.
# Both install what they need (Debian packages, a venv with torch==2.13.0 first, then the package).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNS   := runs
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck wheel-check debian venv bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: this exact CPU wheel is on disk; a looser spec can pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,boards]'
	touch $(STAMP)

venv: $(STAMP)

debian:
	./tools/install-debian.sh

demo: venv debian
	@mkdir -p $(RUNS)
	@[ -f $(RUNS)/resnet8.pt ] || $(BIN)/edgefold train --model resnet8 --out $(RUNS)/resnet8.pt
	$(BIN)/edgefold deploy --target nano33ble-qemu --model resnet8 --weights $(RUNS)/resnet8.pt \
		--method fold --ratio 0.25 --repair repair --out $(RUNS)/demo

# EDGEFOLD_FULL_BITEXACT=1: the runtime is checked bit-exact against TFLM on every zoo model, plain and folded.
# The suite includes tests/test_wheel.py (the built wheel, installed outside the checkout, deploys to the twin).
test: venv debian
	$(BIN)/ruff check .
	$(BIN)/python tools/typecheck.py
	@EDGEFOLD_FULL_BITEXACT=1 $(BIN)/python -m pytest --durations=15 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: venv
	$(BIN)/ruff check .

# mypy on the public API and the hand-off types ([tool.mypy] in pyproject.toml lists the modules).
typecheck: venv
	$(BIN)/python tools/typecheck.py

# Build the wheel, install it into a fresh venv outside the checkout and deploy from there (also part of `test`).
wheel-check: venv debian
	$(BIN)/python -m pytest -m wheel tests/test_wheel.py

clean:
	rm -rf $(VENV) $(RUNS) .pytest_cache .mypy_cache .cache/typecheck
