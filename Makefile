# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
# CPU build by default. A GPU user: make TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.spikequant-installed

.PHONY: demo test test-slow lint bench docs docs-serve clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[dev,interop,nir,docs]"
	# SpikingJelly 2.0 pins torchvision/torchaudio that do not install beside a CPU torch build.
	$(BIN)/pip install -q --no-deps spikingjelly==2.0.0
	# NIR consumers for the interop tests: Norse pins torchvision; Sinabs pins nir<=1.0.4 and the
	# samna hardware driver; it reads its version with pbr at import.
	$(BIN)/pip install -q --no-deps norse==1.1.0 sinabs==3.1.3 pbr==7.1.3
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spikequant demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The documentation site (mkdocs.yml): warnings are errors, so a broken link fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info
