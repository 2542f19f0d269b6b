# make test       : create .venv if missing, install the lock (requirements-lock.txt) and dhclib, check the installed
#                   versions against the lock, run the unit tests and nbval
# make reproduce  : run every notebook headless with papermill (PROFILE=quick|paper DEVICE=auto|cpu|cuda (default: each notebook's, auto) TRIALS=N
#                   MISSING=train|skip: skip tabulates only the runs already stored, e.g. the committed paper runs;
#                   ENGINE=...: where and how the runs train, one string, e.g. stack:8, local:2,stack:auto or
#                   slurm:gpus=1,stack:auto; default the notebooks' stack:auto: 1 on a CPU, stacks on CUDA (docs/engines.md))
# make report     : outputs/$(PROFILE)/REPORT.md and its CSV tables from the runs stored under outputs/$(PROFILE)
#                   (PROFILE=paper: also the README's results tables, between their generated-table markers:
#                   scripts/readme_tables.py)
# make notebooks  : re-execute the committed notebooks in place (quick profile) so that nbval checks fresh outputs
#                   (their sources do not change, so the paired notebooks/*.py stay in sync)
# make lab        : JupyterLab on this repository, notebooks paired with their .py, saves normalised
# make site       : the static site of docs/, the paper report and the executed paper notebooks (build/site)
# make bench      : the throughput benchmark (benchmarks/throughput.py)
# make reference  : copy the checked tables of the quick notebooks (outputs/quick) to tests/reference/quick, the
#                   references nbval compares with (after `make notebooks` on the reference numeric path)
# make lock       : re-resolve requirements-lock.txt from pyproject.toml and requirements-pins.txt (needs uv)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= quick
DEVICE  ?=
TRIALS  ?=
MISSING ?=
ENGINE  ?=
# Where make reproduce and make notebooks write, asked for (dhclib/runs/outputs.py): the committed outputs/ unless
# DHC_OUTPUT_ROOT says otherwise; a notebook run without it writes its tables and figures to outputs/scratch/.
OUTPUT_ROOT := $(or $(DHC_OUTPUT_ROOT),outputs)
UNIT_SHARDS ?= 2
NOTEBOOKS := 01_permuted_mnist 02_imbalanced_permuted_mnist 03_split_mnist 04_vision_mixture 05_ablation 06_split_cifar 07_lambda_search
# Two lanes of notebooks, one torch thread each (notebooks/lanes.sh says why); 05 reuses 01's runs: same lane.
LANES := "01_permuted_mnist 04_vision_mixture 05_ablation" "02_imbalanced_permuted_mnist 03_split_mnist 06_split_cifar 07_lambda_search"
# The paper profile runs the Vision Mixture's five tasks with notMNIST's official split (notebook 04's defaults are
# the three tasks whose data this project's CI has); papermill ignores the two parameters in the other notebooks.
# Also on the paper profile: the paper's 10 trials unless TRIALS says otherwise, Table 4 with the paper's 5 trials per eta (05), and the lambda search's Permuted MNIST
# grids from the paper store (07), so that outputs/paper/ depends on nothing but outputs/paper/runs; 04 is skipped
# with the reason where its five datasets cannot be read.
PAPER_ARGS := $(if $(filter paper,$(PROFILE)),-p vision_tasks paper -p notmnist_split official -p sweep_trials 5 \
                -p permuted_profile paper $(if $(TRIALS),,-p trials 10))
PAPER_NEEDS := $(if $(filter paper,$(PROFILE)),04_vision_mixture:vision_mixture)

.PHONY: install lockcheck lock reference test unit nbval reproduce notebooks report lab site bench clean

# The lock pins every dependency with its hashes; dhclib itself goes in without touching them (--no-deps), built
# with the lock's setuptools (--no-build-isolation: nothing unpinned is fetched).
$(VENV)/.installed: pyproject.toml requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements-lock.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

lockcheck: $(VENV)/.installed
	$(PY) scripts/check_lock.py requirements-lock.txt

lock:
	uv pip compile pyproject.toml --extra cluster --extra docs --universal --python-version 3.11 --generate-hashes \
	  -c requirements-pins.txt -o requirements-lock.txt

test: lockcheck unit nbval

unit: $(VENV)/.installed
	bash scripts/test_shards.sh $(PY) $(UNIT_SHARDS)

# nbval trains afresh into a temporary output root, then compares the cells marked NBVAL_CHECK_OUTPUT.
nbval: $(VENV)/.installed
	@if ! $(PY) -c "import dhclib.data.idx as d; d.load_idx_dataset('MNIST')" 2>.nbval-skip.txt; then \
	  echo "SKIPPED nbval: the notebooks need MNIST: $$(tail -1 .nbval-skip.txt)"; \
	else \
	  tmp=$$(mktemp -d); \
	  DHC_OUTPUT_ROOT=$$tmp bash notebooks/lanes.sh nbval $(PY) $(LANES); \
	  status=$$?; rm -rf $$tmp; exit $$status; \
	fi

reproduce: $(VENV)/.installed
	$(if $(STACK)$(EXECUTOR),$(error STACK= and EXECUTOR= were replaced by ENGINE= (e.g. ENGINE=stack:8 or ENGINE=local:2): docs/engines.md, "What replaced what"))
	DHC_OUTPUT_ROOT=$(abspath $(OUTPUT_ROOT)) NB_OUT=$(OUTPUT_ROOT)/$(PROFILE) NB_ARGS="--log-output -p profile $(PROFILE) $(if $(DEVICE),-p device $(DEVICE)) \
	  $(if $(TRIALS),-p trials $(TRIALS)) $(if $(MISSING),-p missing $(MISSING)) $(if $(ENGINE),-p engine $(ENGINE)) \
	  $(PAPER_ARGS)" \
	  NB_NEEDS="$(PAPER_NEEDS)" bash notebooks/lanes.sh execute $(PY) $(LANES)

# The tables each notebook's NBVAL_CHECK_OUTPUT cells compare with (dhclib.paper.regression).
REFERENCE_TABLES := 01_permuted_mnist:table1,verdicts,diverged 02_imbalanced_permuted_mnist:table1,verdicts,diverged \
  03_split_mnist:table1,verdicts,diverged 04_vision_mixture:table1,verdicts,diverged 05_ablation:traces_by_task,table4 \
  07_lambda_search:split_mnist_grid,permuted_mnist_grid,permuted_mnist_beyond_grid,best_lambda

reference:
	@for entry in $(REFERENCE_TABLES); do \
	  nb=$${entry%%:*}; mkdir -p tests/reference/quick/$$nb; \
	  for t in $$(echo $${entry#*:} | tr , ' '); do cp outputs/quick/$$nb/$$t.csv tests/reference/quick/$$nb/ || exit 1; done; \
	done; echo "references copied to tests/reference/quick/"

report: $(VENV)/.installed
	$(PY) -m dhclib report --out outputs/$(PROFILE)
	$(if $(filter paper,$(PROFILE)),$(PY) scripts/readme_tables.py --store outputs/paper README.md docs/findings.md)

notebooks: $(VENV)/.installed
	DHC_OUTPUT_ROOT=$(abspath $(OUTPUT_ROOT)) bash notebooks/lanes.sh execute $(PY) $(LANES)

# JupyterLab with this repository's settings (.jupyter/): notebooks/ paired with their .py (jupytext), and every save
# normalised as the notebook lanes write it (scripts/normalize_notebook.py).
lab: $(VENV)/.installed
	JUPYTER_CONFIG_PATH=$(CURDIR)/.jupyter $(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR)

# The static site (mkdocs.yml): docs/, outputs/paper/REPORT.md and the committed executed paper notebooks, never
# re-executed; built strictly (a broken link fails) into build/site; the tree stays unchanged.
site: $(VENV)/.installed
	$(PY) scripts/site.py --out build/site

bench: $(VENV)/.installed
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
