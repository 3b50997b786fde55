# One-command set-up: `make demo` (the main job on the embedded demo data)
# and `make test`. Both install the pinned stack into .venv first.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
PYTEST_ARGS ?=

export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: install test test-all demo clean-demo

install:
	$(PYTHON) tools/install_env.py --venv $(VENV)

test: install
	$(VPY) -m pytest tests $(PYTEST_ARGS)

# Also the slow end-to-end runs (all three stages for several configs).
test-all: install
	$(VPY) -m pytest tests --runslow $(PYTEST_ARGS)

demo: install
	$(VPY) tools/demo.py

clean-demo:
	rm -rf work_dirs/demo data/skeleton/demo_3d.pkl
