# Scenecast — the commands a fresh machine needs: `make demo` and `make test`.
# Virtual environments, as on a user's machine: the backend's (.venv) and one per Blender a user runs
# (bpy as a module): .venv-blender (5.0), .venv-blender42 (4.2 LTS), .venv-blender45 (4.5 LTS) on
# Python 3.11, and .venv-blender53 (5.3, the newest release), which needs Python 3.13. Nothing ML goes
# into Blender.

PYTHON ?= python3
VENV := .venv
VENV_BLENDER := .venv-blender
VENV_BLENDER42 := .venv-blender42
VENV_BLENDER45 := .venv-blender45
VENV_BLENDER53 := .venv-blender53
VENV_TYPES := .venv-typecheck
# Python 3.13 for bpy 5.3, found as a user has it: PYTHON313=/path/to/python3.13, else `python3.13` on
# PATH (only if it runs: a pyenv shim without 3.13 selected does not).
PYTHON313 ?= $(shell python3.13 -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && echo python3.13)
export HF_HUB_OFFLINE ?= 1
export PYTHONDONTWRITEBYTECODE := 1
TEST_ENV := XDG_CACHE_HOME=$(CURDIR)/.cache BLENDER_USER_RESOURCES=$(CURDIR)/.cache/blender-user SCENECAST_BACKEND_PYTHON=$(CURDIR)/$(VENV)/bin/python
# The demo is not a test: it reads the user's own Hugging Face cache (HF_HOME or ~/.cache/huggingface),
# so a default model already there is used. Only Blender's user folder and the backend's data
# (uploads, outputs) stay inside the checkout.
DEMO_ENV := BLENDER_USER_RESOURCES=$(CURDIR)/.cache/blender-user SCENECAST_DATA=$(CURDIR)/.cache/scenecast SCENECAST_BACKEND_PYTHON=$(CURDIR)/$(VENV)/bin/python

.PHONY: venv demo test test-backend test-core test-blender test-blender42 test-blender45 test-blender53 typecheck extension bench bench-slow serve clean

venv: $(VENV)/.stamp $(VENV_BLENDER)/.stamp $(VENV_BLENDER42)/.stamp $(VENV_BLENDER45)/.stamp

# The backend venv installs the backend *package* (pyproject.toml; pins in backend/requirements.txt),
# editable so the checkout's code is what runs, with the test extra (pytest).
$(VENV)/.stamp: pyproject.toml backend/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

$(VENV_BLENDER)/.stamp: tests/requirements-blender.txt
	$(PYTHON) -m venv $(VENV_BLENDER)
	$(VENV_BLENDER)/bin/pip install -q --disable-pip-version-check -r tests/requirements-blender.txt
	touch $@

$(VENV_BLENDER42)/.stamp: tests/requirements-blender42.txt
	$(PYTHON) -m venv $(VENV_BLENDER42)
	$(VENV_BLENDER42)/bin/pip install -q --disable-pip-version-check -r tests/requirements-blender42.txt
	touch $@

$(VENV_BLENDER45)/.stamp: tests/requirements-blender45.txt
	$(PYTHON) -m venv $(VENV_BLENDER45)
	$(VENV_BLENDER45)/bin/pip install -q --disable-pip-version-check -r tests/requirements-blender45.txt
	touch $@

# bpy 5.3 is built for Python 3.13 only. Without it `make test` stops here and says what to install:
# a green run must mean the add-on works in the newest Blender too, so the version is never skipped.
$(VENV_BLENDER53)/.stamp: tests/requirements-blender53.txt
	@if [ -z "$(PYTHON313)" ]; then \
	  echo "make: Blender 5.3 (bpy 5.3.0) needs Python 3.13, and none was found." >&2; \
	  echo "  Install it (Debian/Ubuntu: apt-get install python3.13 python3.13-venv; macOS: brew install python@3.13;" >&2; \
	  echo "  pyenv: pyenv install 3.13), then run make test again, or point to it: make test PYTHON313=/path/to/python3.13" >&2; \
	  exit 1; \
	fi
	$(PYTHON313) -m venv $(VENV_BLENDER53)
	$(VENV_BLENDER53)/bin/pip install -q --disable-pip-version-check -r tests/requirements-blender53.txt
	touch $@

$(VENV_TYPES)/.stamp: tests/requirements-typecheck.txt
	$(PYTHON) -m venv $(VENV_TYPES)
	$(VENV_TYPES)/bin/pip install -q --disable-pip-version-check -r tests/requirements-typecheck.txt
	touch $@

# The main job: headless Blender builds a blockout scene, extracts passes, generates through an
# auto-started backend and writes passes and results to out/.
demo: venv
	$(DEMO_ENV) $(VENV_BLENDER)/bin/python examples/demo.py --out out

serve: $(VENV)/.stamp
	$(VENV)/bin/python -m backend serve

# Every suite; the Blender and end-to-end tests on each Blender (see README, "Tests").
test: venv $(VENV_BLENDER53)/.stamp $(VENV_TYPES)/.stamp
	$(MAKE) --no-print-directory test-backend test-core test-blender test-blender42 test-blender45 test-blender53 typecheck

test-backend: $(VENV)/.stamp
	$(TEST_ENV) $(VENV)/bin/python -m pytest -q tests/backend

test-core: $(VENV_BLENDER)/.stamp
	$(TEST_ENV) $(VENV_BLENDER)/bin/python -m pytest -q tests/addon_core

test-blender: $(VENV_BLENDER)/.stamp $(VENV)/.stamp
	$(TEST_ENV) tests/run_blender_suite.sh $(VENV_BLENDER)/bin/python -m pytest -q tests/blender tests/e2e

test-blender42: $(VENV_BLENDER42)/.stamp $(VENV)/.stamp
	$(TEST_ENV) tests/run_blender_suite.sh $(VENV_BLENDER42)/bin/python -m pytest -q tests/blender tests/e2e

test-blender45: $(VENV_BLENDER45)/.stamp $(VENV)/.stamp
	$(TEST_ENV) tests/run_blender_suite.sh $(VENV_BLENDER45)/bin/python -m pytest -q tests/blender tests/e2e

test-blender53: $(VENV_BLENDER53)/.stamp $(VENV)/.stamp
	$(TEST_ENV) tests/run_blender_suite.sh $(VENV_BLENDER53)/bin/python -m pytest -q tests/blender tests/e2e

typecheck: $(VENV_TYPES)/.stamp
	$(VENV_TYPES)/bin/python -m mypy --config-file tests/mypy.ini addon

# The zip carries the backend's wheel (built with the backend venv's setuptools) for Install Backend.
extension: $(VENV_BLENDER)/.stamp $(VENV)/.stamp
	$(TEST_ENV) $(VENV_BLENDER)/bin/python tools/build_extension.py --out dist --backend-wheel-python $(CURDIR)/$(VENV)/bin/python

bench: venv
	$(TEST_ENV) $(VENV)/bin/python bench/run.py

bench-slow: venv
	$(TEST_ENV) $(VENV)/bin/python bench/run.py --slow

clean:
	rm -rf out dist build .cache
