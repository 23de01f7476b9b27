# Two commands:  make lab  (install + open the course)   make test  (install + run every test)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Optional: a PyTorch wheel index, e.g. https://download.pytorch.org/whl/cpu for a CPU-only laptop.
TORCH_INDEX ?=
PIP_INDEX_ARGS := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
PORT   ?= 8888
# JupyterLab refuses to run as root unless told to (containers, CI machines).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false
# OpenMP threads that spin while waiting slow small CPU steps 3-10x on a busy machine.
export OMP_WAIT_POLICY ?= PASSIVE

.DEFAULT_GOAL := install
include mk/site.mk

.PHONY: install lab lab-settings test test-fast test-portable execute lint quiz-lint quiz-stats format student-copy answer-key lock clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(PIP_INDEX_ARGS) -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	$(MAKE) lab-settings
	touch $@

# JupyterLab settings shipped with the course (no "official Jupyter news?" toast over the outputs):
# overrides.json in the environment's app settings folder is read by every JupyterLab it starts.
lab-settings:
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp lab/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json

lab: install lab-settings
	$(BIN)/jupyter lab --port=$(PORT) $(ROOT_FLAG) notebooks/00_start_here.ipynb

test: install site-install  ## lint, unit tests, nbval over every notebook, the site, browser tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-fast: install  ## unit tests only, no notebooks, no browser
	$(BIN)/python -m pytest -o addopts="-ra -p no:cacheprovider" -m "not browser and not slow" tests

test-portable: install  ## nbval with ATen and oneDNN held to AVX2, as on a CPU without AVX512-BF16/AMX
	ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 $(BIN)/python -m pytest -o addopts="-p no:cacheprovider" \
	  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks

execute: install  ## re-execute every notebook in place (refuses on a busy machine)
	$(BIN)/python scripts/execute_notebooks.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m course_utils.quiz.lint

quiz-lint: install  ## every quiz bank against the rules that keep a score honest
	$(BIN)/python -m course_utils.quiz.lint

quiz-stats: install  ## per bank: questions, correct-is-longest, key positions, predict-first prompts
	$(BIN)/python -m course_utils.quiz.lint --stats

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

student-copy: install  ## notebooks without solutions, for learners
	$(BIN)/python scripts/make_student_copy.py student_copy $(if $(FORCE),--force)

answer-key: install  ## every quiz's answers, as markdown, for instructors
	$(BIN)/python scripts/make_answer_key.py answer_key.md

lock:  ## re-resolve requirements.txt from pyproject.toml's dependencies (needs the package registry)
	rm -rf /tmp/course-lock && $(PYTHON) -m venv /tmp/course-lock
	/tmp/course-lock/bin/pip install $(PIP_INDEX_ARGS) ".[test]"
	{ sed -n '/^#/p' requirements.txt; /tmp/course-lock/bin/pip freeze --exclude course-utils | sed 's/^torch==\(.*\)+cpu/torch==\1/'; } > requirements.txt.new
	mv requirements.txt.new requirements.txt

clean:
	rm -rf $(VENV) $(SITE_VENV) $(SITE_OUT) .pytest_cache .ruff_cache .hypothesis student_copy answer_key.md
