# make grade        grade every exercise (the first run sets up .venv)
# make grade EX=05  grade one exercise
# make test         the repository's own tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
EX     ?=
SEED   ?=
GRADE_ARGS := $(EX) $(if $(SEED),--seed $(SEED))

.PHONY: grade test setup clean bench mutants

grade: $(STAMP)
	@$(PY) -m grader $(GRADE_ARGS)

setup: $(STAMP)

$(STAMP): requirements.txt
	@echo "Setting up $(VENV) (first run only)..."
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

$(DEVSTAMP): requirements-dev.txt $(STAMP)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(DEVSTAMP)

test: $(DEVSTAMP)
	@$(PY) -m pytest -q

bench: $(STAMP)
	@$(PY) bench/grade_speed.py
	@$(PY) bench/flash_memory.py

clean:
	rm -rf $(VENV) .pytest_cache .grade
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

mutants: $(STAMP)
	@$(PY) tests/mutation.py $(SEEDS)
