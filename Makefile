# edgefold: `make demo` trains resnet8, fits it to a Nano 33 BLE latency budget and deploys it to the emulated board
# (QEMU); `make test` runs the whole suite.
# Both install what they need (Debian packages, a venv with torch==2.13.0 first, then the package).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNS   := runs
PYTEST_ARGS ?=

.PHONY: demo test test-full lint typecheck wheel-check debian venv bench clean

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
	# resnet8 runs ~510 ms per inference on the Nano 33 BLE (estimated from the twin's instruction count): fit it to
	# 250 ms (per-group ratios by measured sensitivity), recover by distillation, deploy to the twin, before/after.
	$(BIN)/edgefold deploy --target nano33ble-qemu --model resnet8 --weights $(RUNS)/resnet8.pt \
		--fit --max-latency 250 --repair repair --recover --recover-time 150 --out $(RUNS)/demo

# The suite runs on JOBS pytest-xdist workers, a file per worker (--dist loadfile: a file's module and session
# fixtures, e.g. a sweep, a HIL matrix, the edge zoo's exports, are built once), then the `isolated` tests (they compare the process table, /tmp and
# the accounts before and after a command) alone. It includes tests/test_wheel.py (the built wheel, installed outside
# the checkout, deploys to the twin). Exit code 5 (nothing collected) fails.
JOBS ?= 2
define run_pytest
	@$(BIN)/python -m pytest $(1) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc
endef

test: venv debian
	$(BIN)/ruff check .
	$(BIN)/python tools/typecheck.py
	$(call run_pytest,-n $(JOBS) --dist loadfile -m "not isolated" --durations=15)
	$(call run_pytest,-m isolated)

# `test` plus vgg11_bn and resnet18 bit-exact against TFLM (plain and folded) and more random kernel cases.
test-full: export EDGEFOLD_FULL_BITEXACT = 1
test-full: test

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
