# The two commands of the quick start: `make repro` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# Test-only tools (moto's S3 server, hadolint) live in a second venv: moto's botocore conflicts with dvc-s3.
TOOLS  := .venv-tools

# No network at import time: albumentations' online version check is off for every command here
# (stages, tests, bench); the package sets the same default itself (repro/__init__.py).
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: venv tools test repro bench rehearse gpu-check lock clean-venv

venv: $(STAMP)

# The lock file holds every runtime and test dependency at an exact version.
# torchattacks (test-only cross-check) pins requests~=2.25, so it goes in
# without its dependencies; it only needs torch, torchvision, numpy, scipy.
# pytorch-fid (test-only: the reference FID Inception graph of tests/test_fid.py) needs nothing more either.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24" "setuptools>=64"
	$(PIP) install --quiet -r requirements.lock
	$(PIP) install --quiet --no-deps torchattacks==3.5.1 pytorch-fid==0.3.0
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Exact versions from requirements-tools.lock; the tests take these tools from $(TOOLS)/bin only
# (REPRO_TOOLS points there), never from whatever the system has; under CI=true a missing one fails.
tools: $(TOOLS)/.installed

$(TOOLS)/.installed: requirements-tools.lock
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet -r requirements-tools.lock
	touch $@

# The tests run in one pytest-xdist worker process (-n 1): a native crash (a heap abort or SIGSEGV in a
# kernel) fails the test it happened in, the worker is replaced, and the run goes on to its summary.
test: venv tools
	REPRO_TOOLS=$(CURDIR)/$(TOOLS)/bin $(VENV)/bin/pytest -q -n 1

# `make repro` runs the embedded default; `make repro TIER=smoke|small|paper [FRACTION=0.1]` first merges
# tiers/<TIER>.yaml into params.yaml, at FRACTION of the data and epochs (`git checkout params.yaml` returns
# to the default). Overlays stack: TIER="small trial" is the small tier on the trial's reduced grid.
TIER ?= default
FRACTION ?= 1
repro: venv
	@if [ "$(TIER)" != default ]; then $(PY) -m repro.tiers use $(TIER) --fraction $(FRACTION); fi
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/dvc repro

# Speed against baselines run in the same session (bench/README.md); writes bench/results/<machine>.json.
bench: venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m bench.run

# The real tiers' whole path on the CPU at trial scale (bench/rehearse.py): format-exact files of every dataset a
# tier reads, the whole `dvc repro` of small, paper and each overlay stacked on paper, checked by value; writes
# bench/results/<machine>-rehearse.json. Not part of `make test`. ONLY="small paper-a10" runs some of them.
ONLY ?=
rehearse: venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m bench.rehearse $(if $(ONLY),--only $(ONLY))

# The first command on a new CUDA machine (repro/gpucheck.py): fine-tunes and evaluates a ResNet-18 at 32 px and a
# ResNet-50 at 224 px on a few hundred images, checks devices, fp32 attacks and masks, prints the measured rates
# beside the planner's and each tier's GPU-hours. Without CUDA: one line, exit 0.
gpu-check: venv
	$(PY) -m repro.gpucheck

# Re-resolve the lock file from pyproject.toml (needs the package index).
lock:
	rm -rf /tmp/repro-lock && $(PYTHON) -m venv /tmp/repro-lock
	/tmp/repro-lock/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1 . pytest pytest-xdist hypothesis
	/tmp/repro-lock/bin/pip uninstall -y repro
	( head -3 requirements.lock; /tmp/repro-lock/bin/pip freeze ) > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean-venv:
	rm -rf $(VENV) $(TOOLS)
