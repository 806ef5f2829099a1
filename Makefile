# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
WHEELS := .cache/wheels
LLAMA_VERSION := 0.3.36
# A portable x86-64-v3 build: llama.cpp's native build also enables AMX where the CPU lists it,
# and on virtual machines such as this project's (Xeon, AMX listed) it dies with SIGILL at its
# first tile instruction.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF

.PHONY: demo test test-fast lint install browser clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# Build llama-cpp-python once with our flags; pip's own cache would hand back any build.
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel -q --no-cache-dir --no-deps \
	    llama-cpp-python==$(LLAMA_VERSION) -w $(WHEELS)
	$(BIN)/python -m pip install -q $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/slmscan scan --offline examples/sample-article.md

# The real-browser test needs Chromium. Only as root with apt (a CI container) is Debian's
# package installed for it; elsewhere that test skips and says how to install it.
APT_CHROMIUM := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    echo "installing Debian's chromium for the real-browser test" && \
	    { $(APT_CHROMIUM) >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && $(APT_CHROMIUM) >/dev/null 2>&1; }; }; } || \
	  echo "chromium not installed: the real-browser test will skip"

test: $(STAMP) browser
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not model and not slow"

lint: $(STAMP)
	$(BIN)/ruff check slmscan tests benchmarks
	$(BIN)/ruff format --check slmscan tests benchmarks
	$(BIN)/mypy slmscan

clean:
	rm -rf $(VENV) build dist *.egg-info
