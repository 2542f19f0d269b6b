# make test       : create .venv if missing, install dhclib with its dependencies, run the unit tests and nbval
# make reproduce  : run every notebook headless with papermill (PROFILE=quick|paper DEVICE=auto|cpu|cuda TRIALS=N)
# make notebooks  : re-execute the committed notebooks in place (quick profile) so that nbval checks fresh outputs
# make bench      : the throughput benchmark (benchmarks/throughput.py)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= quick
DEVICE  ?= auto
TRIALS  ?=
NOTEBOOKS := 01_permuted_mnist 02_imbalanced_permuted_mnist 03_split_mnist 05_ablation

.PHONY: install test unit nbval reproduce notebooks bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

install: $(VENV)/.installed

test: unit nbval

unit: $(VENV)/.installed
	$(PY) -m pytest tests

# nbval trains afresh into a temporary output root, then compares the cells marked NBVAL_CHECK_OUTPUT.
nbval: $(VENV)/.installed
	@if ! $(PY) -c "import dhclib.data as d; d.load_idx_dataset('MNIST')" 2>.nbval-skip.txt; then \
	  echo "SKIPPED nbval: the notebooks need MNIST: $$(tail -1 .nbval-skip.txt)"; \
	else \
	  tmp=$$(mktemp -d); \
	  DHC_OUTPUT_ROOT=$$tmp $(PY) -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
	    $(addprefix notebooks/,$(addsuffix .ipynb,$(NOTEBOOKS))); \
	  status=$$?; rm -rf $$tmp; exit $$status; \
	fi

reproduce: $(VENV)/.installed
	set -e; for nb in $(NOTEBOOKS); do \
	  mkdir -p outputs/$(PROFILE)/$$nb; \
	  echo "== $$nb ($(PROFILE) profile, device $(DEVICE))"; \
	  $(PY) -m papermill --cwd notebooks --log-output notebooks/$$nb.ipynb outputs/$(PROFILE)/$$nb/$$nb.ipynb \
	    -p profile $(PROFILE) -p device $(DEVICE) $(if $(TRIALS),-p trials $(TRIALS)); \
	done

notebooks: $(VENV)/.installed
	set -e; for nb in $(NOTEBOOKS); do \
	  echo "== $$nb"; \
	  $(PY) -m papermill --cwd notebooks notebooks/$$nb.ipynb notebooks/$$nb.ipynb; \
	done

bench: $(VENV)/.installed
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
