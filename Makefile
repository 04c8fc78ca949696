# tape-runner: two commands on a fresh machine with Python 3.11 and make.
#   make run    set up .venv with the runtime alone, run the five seed scenarios as one sweep
#   make test   set up .venv with every extra and the test stack, run the test suite
#   make notebook   run notebooks/seed_tour.ipynb in a Jupyter kernel, into outputs/seed_tour.ipynb
#   make docs       the documentation site (docs/, mkdocs.yml) into site/, with --strict
#   make bench      the benchmark, ratios against plain TensorFlow and bare Hydra (benchmarks/results.md)
#   make mutation   mutants of the oracle and check modules against their tests (benchmarks/results.md)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast lint docs bench mutation notebook clean

install: $(STAMP)

# The runtime alone (TensorFlow, Hydra, SymPy, Matplotlib, the joblib and submitit launchers):
# what `make run` needs. Tracking, search, Ray and the test stack are extras, added by $(STAMP).
$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(RUNTIME)
	$(BIN)/tape-runner experiment=seed_tour
	@echo "Sweep outputs: $$(ls -dt outputs/multirun/*/* | head -n 1)"

test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=25

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check runner tests benchmarks hydra_plugins notebooks
	$(BIN)/lint-imports --no-cache

docs: $(STAMP)
	$(BIN)/mkdocs build --strict
	@echo "Documentation site: site/index.html"

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

mutation: $(STAMP)
	$(BIN)/python benchmarks/mutation.py

notebook: $(STAMP)
	$(BIN)/python notebooks/execute.py notebooks/seed_tour.ipynb outputs/seed_tour.ipynb

clean:
	rm -rf outputs/2* outputs/multirun .pytest_cache .ruff_cache mutants
