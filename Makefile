# Scenecast — the commands a fresh machine needs: `make demo` and `make test`.
# Three virtual environments, as on a user's machine: the backend's (.venv) and Blender's
# (bpy as a module: .venv-blender for 5.0, .venv-blender42 for the 4.2 LTS). Nothing ML goes into Blender.

PYTHON ?= python3
VENV := .venv
VENV_BLENDER := .venv-blender
VENV_BLENDER42 := .venv-blender42
VENV_TYPES := .venv-typecheck
export HF_HUB_OFFLINE ?= 1
export PYTHONDONTWRITEBYTECODE := 1
TEST_ENV := XDG_CACHE_HOME=$(CURDIR)/.cache BLENDER_USER_RESOURCES=$(CURDIR)/.cache/blender-user SCENECAST_BACKEND_PYTHON=$(CURDIR)/$(VENV)/bin/python
# The demo is not a test: it reads the user's own Hugging Face cache (HF_HOME or ~/.cache/huggingface),
# so a default model already there is used. Only Blender's user folder and the backend's data
# (uploads, outputs) stay inside the checkout.
DEMO_ENV := BLENDER_USER_RESOURCES=$(CURDIR)/.cache/blender-user SCENECAST_DATA=$(CURDIR)/.cache/scenecast SCENECAST_BACKEND_PYTHON=$(CURDIR)/$(VENV)/bin/python

.PHONY: venv demo test test-backend test-core test-blender test-blender42 typecheck extension bench bench-slow serve clean

venv: $(VENV)/.stamp $(VENV_BLENDER)/.stamp $(VENV_BLENDER42)/.stamp

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

test: venv $(VENV_TYPES)/.stamp
	$(MAKE) --no-print-directory test-backend test-core test-blender test-blender42 typecheck

test-backend: $(VENV)/.stamp
	$(TEST_ENV) $(VENV)/bin/python -m pytest -q tests/backend

test-core: $(VENV_BLENDER)/.stamp
	$(TEST_ENV) $(VENV_BLENDER)/bin/python -m pytest -q tests/addon_core

test-blender: $(VENV_BLENDER)/.stamp $(VENV)/.stamp
	$(TEST_ENV) $(VENV_BLENDER)/bin/python -m pytest -q tests/blender tests/e2e

test-blender42: $(VENV_BLENDER42)/.stamp
	$(TEST_ENV) $(VENV_BLENDER42)/bin/python -m pytest -q tests/blender

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
