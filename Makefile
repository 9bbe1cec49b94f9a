# make grade        grade every exercise (the first run sets up .venv)
# make grade EX=05  grade one exercise
# make test         the repository's own tests (make test-fast: the in-process unit tests, in seconds)
# make setup [PYTHON=python3.11] [TORCH=cpu|cuda|system]   (grader/setup_venv.py: CPU-only PyTorch on Linux)
PYTHON ?= python3
TORCH  ?=
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
EX     ?=
SEED   ?=
GRADE_ARGS := $(EX) $(if $(SEED),--seed $(SEED))

.PHONY: grade test test-fast fast-tests repository-tests setup clean bench mutants golden

# Exit 1 (not every exercise at full marks) is a grade, not a failure of make: no "Error 1" line.
# Scripts that need the status call python -m grader, which still exits 0, 1 or 2.
# --narrate: a file with shape comments gets its narration line (no points).
grade: $(STAMP)
	@$(PY) -m grader $(GRADE_ARGS) --narrate || [ $$? -eq 1 ]

setup: $(STAMP)

# The stamps' recipes run every time (FORCE): the script keeps .venv in milliseconds when its stamp
# matches, and rebuilds it when made for other requirements, or with another PYTHON= or TORCH= given
# on the command line; left out, those keep the venv's own choices.
GOAL  = $(patsubst repository-tests,test,$(patsubst fast-tests,test-fast,$(or $(firstword $(MAKECMDGOALS)),grade)))
SETUP = @command -v $(PYTHON) >/dev/null || { echo "No $(PYTHON) here: this project needs Python 3.10 or newer. Run: make $(GOAL) PYTHON=/path/to/python3"; exit 2; }; \
	$(PYTHON) grader/setup_venv.py --venv $(VENV) --python-name '$(PYTHON)' --goal $(GOAL) \
	$(if $(filter command line environment environment override,$(origin PYTHON)),--explicit-python) $(if $(TORCH),--torch '$(TORCH)')

# A dry run (make -n) shows the target's own commands: it checks nothing.
CHECK := $(if $(findstring n,$(firstword -$(MAKEFLAGS))),,FORCE)

$(STAMP): $(CHECK)
	$(SETUP) requirements.txt

$(DEVSTAMP): $(CHECK)
	$(SETUP) --dev requirements-dev.txt requirements.txt

.PHONY: FORCE
FORCE:
.PRECIOUS: $(STAMP) $(DEVSTAMP)

# A student copy (make student-template) has no tests/: there, grading is the whole story.
test:
	@if [ -d tests ]; then $(MAKE) --no-print-directory repository-tests; \
	else echo "This copy has no repository tests: 'make grade' grades your exercises."; fi

# One worker per core, a test file to a worker (its module fixtures grade once).
repository-tests: $(DEVSTAMP)
	@$(PY) -m pytest -q -n auto --dist loadfile

# No grader run, no sandbox, no terminal: the inner loop while changing the grader's pieces.
test-fast:
	@if [ -d tests ]; then $(MAKE) --no-print-directory fast-tests; \
	else echo "This copy has no repository tests: 'make grade' grades your exercises."; fi

fast-tests: $(DEVSTAMP)
	@$(PY) -m pytest -q -m fast

bench: $(STAMP)
	@$(PY) bench/setup_speed.py
	@$(PY) bench/grade_speed.py
	@$(PY) bench/watch_latency.py
	@$(PY) bench/flash_memory.py

# Keeps .grade/: drill history, reset backups and, during a drill, the learner's own file.
clean:
	rm -rf $(VENV) .pytest_cache dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Rewrites tests/golden/ from a fresh grade of its submissions (tests/golden_reports.py): review the diff.
golden: $(STAMP)
	@$(PY) tests/golden_reports.py

mutants: $(STAMP)
	@$(PY) tests/mutation.py $(SEEDS) $(if $(EX),--ex "$(EX)")

# Studying alone (grader/study/): make hint EX=05, watch, drill EX=10, drill-done, progress,
# reset EX=05, solution EX=05 [FORCE=1]
STUDY := $(PY) -m grader.study
.PHONY: hint watch drill drill-done progress reset solution

hint: $(STAMP)
	@$(STUDY) hint $(EX) $(if $(LEVEL),--level $(LEVEL))

watch: $(STAMP)
	@$(STUDY) watch $(EX)

drill: $(STAMP)
	@$(STUDY) drill $(EX)

drill-done: $(STAMP)
	@$(STUDY) drill-done

progress: $(STAMP)
	@$(STUDY) progress

reset: $(STAMP)
	@$(STUDY) reset $(EX)

solution: $(STAMP)
	@$(STUDY) solution $(EX) $(if $(filter-out 0 no false,$(FORCE)),--force)

# For instructors (README "For instructors"): make gradescope, make student-template DEST=path
.PHONY: gradescope student-template

# DIST=folder writes the zip elsewhere (the tests build theirs in a folder of their own).
DIST ?= dist
gradescope:
	@rm -rf $(DIST)/gradescope $(DIST)/gradescope.zip && mkdir -p $(DIST)/gradescope
	@tar -c --exclude=__pycache__ --exclude='*.pyc' grader requirements.txt | tar -x -C $(DIST)/gradescope
	@cp gradescope/setup.sh gradescope/run_autograder $(DIST)/gradescope/
	@# Gradescope has no secrets: a salt for the course seed (README, "One seed") goes into the zip.
	@if [ -n "$$COURSE_SEED_SALT" ]; then echo "COURSE_SEED_SALT=$$COURSE_SEED_SALT" >> $(DIST)/gradescope/grader/course.cfg; fi
	@cd $(DIST)/gradescope && $(PYTHON) -m zipfile -c ../gradescope.zip setup.sh run_autograder requirements.txt grader
	@echo "Wrote $(DIST)/gradescope.zip: upload it as the assignment's autograder (Ubuntu base image)."

student-template:
	@test -n "$(DEST)" || { echo "usage: make student-template DEST=path [SELF_STUDY=1]" >&2; exit 2; }
	@$(PYTHON) -m grader.template "$(DEST)" $(if $(filter-out 0 no false,$(SELF_STUDY)),--self-study)

# Interview practice: make quiz [TOPIC=gqa] [N=10] [SEED=S] (grader/quiz/); make interview
# [FOLLOW_UP=13] [SEED=S]: twenty minutes from blank files, then talking points (grader/interview.py)
.PHONY: quiz interview

interview: $(STAMP)
	@$(PY) -m grader.interview $(if $(FOLLOW_UP),--follow-up $(FOLLOW_UP)) $(if $(SEED),--seed $(SEED))

# `make quiz gqa` works as well as `make quiz TOPIC=gqa`: after quiz, a goal is the topic.
ifeq (quiz,$(firstword $(MAKECMDGOALS)))
QUIZ_TOPIC := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
ifneq ($(QUIZ_TOPIC),)
$(eval $(QUIZ_TOPIC):;@:)
endif
endif

quiz: $(STAMP)
	@$(PY) -m grader.quiz $(or $(TOPIC),$(QUIZ_TOPIC)) $(if $(N),--count $(N)) $(if $(SEED),--seed $(SEED))
