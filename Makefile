# Two entry points: `make demo` (the whole instructor round trip) and `make test`.
# Both create and reuse a local virtual environment in .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
AXE_VERSION := 4.14.1
AXE    := $(VENV)/axe/node_modules/axe-core/axe.min.js
TITO   := $(BIN)/tito
# A command an installed package starts by name is the venv's copy.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo lint test test-fast bench clean-demo

$(STAMP): pyproject.toml
	@# The grading jail runs submitted code under bubblewrap (Debian package bubblewrap): required
	@# as root on Debian. The browser tests of formgrader and the pages drive Debian's chromium and
	@# check the pages with axe-core (from npm): installed when possible, else those checks are
	@# skipped with the reason.
	@need=""; command -v bwrap >/dev/null 2>&1 || need="bubblewrap util-linux"; \
	want=""; command -v chromium >/dev/null 2>&1 || want="chromium"; \
	command -v npm >/dev/null 2>&1 || want="$$want npm"; \
	if [ -n "$$need$$want" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq; \
	  if [ -n "$$need" ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null || exit 1; fi; \
	  if [ -n "$$want" ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$want >/dev/null \
	    || echo "note: apt-get could not install $$want: the browser tests will be skipped"; fi; \
	elif [ -n "$$need$$want" ]; then \
	  echo "note: missing $$need $$want (sudo apt-get install $$need $$want): autograding refuses to" \
	       "run without bubblewrap, and the browser test is skipped without chromium"; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# axe-core, which the browser tests run on every page the project writes (a stamp of its own, so
# that an existing environment gets it too).
$(AXE): | $(STAMP)
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --silent --no-audit --no-fund --prefix $(VENV)/axe axe-core@$(AXE_VERSION) \
	    >/dev/null || echo "note: npm could not install axe-core:" \
	      "the pages' accessibility checks will be skipped"; \
	else echo "note: no npm (apt-get install npm): the pages' accessibility checks will be skipped"; \
	fi

install: $(STAMP) $(AXE)

# Instructor round trip on the bundled example submissions.
demo: install
	$(TITO) system doctor
	$(TITO) export --all
	$(TITO) nbgrader generate --all
	$(TITO) nbgrader collect 06_optimizers examples/submissions --force
	@# The bundled examples are trusted: without root or a delegated control group the demo grades
	@# them anyway, with the memory limit counting user pages only (docs/instructor.md).
	$(TITO) nbgrader autograde 06_optimizers --workers 2 --accept-unbounded-kernel-memory
	$(TITO) nbgrader report 06_optimizers
	$(TITO) nbgrader analytics 06_optimizers
	$(TITO) nbgrader similarity 06_optimizers
	$(TITO) nbgrader verify 06_optimizers --sample 1 --accept-unbounded-kernel-memory
	$(TITO) nbgrader feedback 06_optimizers

# ruff (pyproject.toml [tool.ruff]): the code the project writes is linted and formatted.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The edit-test loop: everything that starts no kernel and no jail.
test-fast: install
	$(BIN)/python -m pytest -n 2 -m "not slow"

bench: install
	$(BIN)/python benchmarks/optimizers.py
	$(BIN)/python benchmarks/wire.py
	$(BIN)/python benchmarks/autograde.py
	$(BIN)/python benchmarks/student_check.py
	$(BIN)/python benchmarks/diagnosis.py

clean-demo:
	rm -rf submitted autograded feedback gradebook.db .tito .grading-staging
