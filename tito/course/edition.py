"""The student edition: the course folder that students clone, with no solution in it.

`build(course, dest)` lays it out as a course of its own that `tito` (the student commands only)
works in:

    modules/<module>/<notebook>.ipynb   the student notebooks of release/ (what `tito module start`
    copies)
    tinytorch/                          module 01 complete, every graded module exported from its
                                        student notebook (its functions raise NotImplementedError)
    tito/                               module list|status|start|complete, test, experiment
    experiments/                        the optimizer studies the notebooks run
    tests/                              the package tests that check what the grader checks
    settings.ini, pyproject.toml, Makefile, .gitignore, README.md

Left out: modules/*_dev.py, assignments/, the reference package, the grading package and the
instructor commands, the reference-generation scripts and the tests that read instructor files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib
from pathlib import Path

from .export import export_notebook
from .notebooks import FINGERPRINTS_FILE, SOLUTION_BEGIN
from .settings import SETTINGS_FILE, Course, CourseError
from .student import points, start

TITO = Path(__file__).resolve().parents[1]
# What the student commands import; the edition's tito/main.py registers only them.
TITO_FILES = [
    "tito/__init__.py",
    "tito/commands/__init__.py",
    "tito/commands/common.py",
    "tito/commands/module.py",
    "tito/commands/package.py",
    "tito/commands/experiment.py",
    "tito/course/__init__.py",
    "tito/course/settings.py",
    "tito/course/notebooks.py",
    "tito/course/export.py",
    "tito/course/student.py",
]
# Dependencies of the student commands, the package, the notebooks and the experiments (versions
# come from the instructor's pyproject.toml). nbgrader is one: the check compares locked cells
# with its checksums. The rest of the grading stack (dask, bubblewrap's seccomp, ...) stays out.
DEPENDENCIES = [
    "numpy",
    "jupytext",
    "nbformat",
    "nbclient",
    "ipykernel",
    "nbdev",
    "nbgrader",
    "matplotlib",
    "typer",
    "rich",
    "omegaconf",
    "pyyaml",
    "scikit-learn",
]
# Students edit in Jupyter Lab (the instructor's comes with nbgrader).
EDITOR = "jupyterlab>=4"
TEST_DEPENDENCIES = ["pytest", "hypothesis"]
# The frozen-reference tests end with comparisons against live torch that need the reference
# scripts and the instructor's source; the edition keeps the file up to that section.
LIVE_TORCH_SECTION = (
    "# ----------------------------------------------------------------"
    " live comparison (torch only)"
)
# How a test reads instructor files by path: loading a script, or a module's source.
INSTRUCTOR_FILES = re.compile(r'spec_from_file_location|_dev\.py"')

MAIN = '''\
"""The `tito` command of the student edition: your modules, their tests, the experiments."""
from __future__ import annotations

import typer

from .commands import experiment, module, package

app = typer.Typer(
    help="TinyTorch course tool: work on your modules, test your code, run the experiments.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.add_typer(module.app, name="module", help="Start, complete and follow your modules.")
app.command("test", help="Run a module's pytest suite against the exported package.")(package.test)
app.add_typer(experiment.app, name="experiment", help="Run the optimizer experiments.")

if __name__ == "__main__":
    app()
'''

MAKEFILE = """\
# Set-up: `make install` (then `source .venv/bin/activate`); `make test` runs every module's tests.
# An existing .venv is used as it is, so on a machine whose Python already has the course's
# packages `python3 -m venv --system-site-packages .venv && make install` installs only this course.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test

$(STAMP): pyproject.toml
\ttest -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
\t$(BIN)/python -m pip install --quiet -e '.[test]'
\ttouch $(STAMP)

install: $(STAMP)

test: install
\t$(BIN)/tito test --all
"""

GITIGNORE = """\
.venv/
__pycache__/
*.pyc
*.egg-info/
build/
.pytest_cache/
.hypothesis/
.ipynb_checkpoints/
# tito's record of your progress, and the backups `tito module start --force` keeps
.tito/
workspace/*/*.backup-*.ipynb
# the known mistakes' fingerprints, copied from modules/ beside your notebook
workspace/*/mistakes.json
# the copy `tito module submit` writes to hand in
hand-in/
# experiment runs
runs/
"""

README = """\
# {course_id}: student edition

You implement the modules' code in Jupyter notebooks; `tito` runs your notebook's tests and
exports your code into a small numpy deep-learning package, `tinytorch`, which later modules
import. This folder has no solutions: commit your work to your own repository as you go.

## Set-up: two commands

With Python 3.11+ and `make`:

```bash
make install                 # creates .venv and installs the course into it (a minute or two)
source .venv/bin/activate    # puts `tito` on your PATH (in every new terminal)
```

On a machine whose Python already has the course's packages, `python3 -m venv
--system-site-packages .venv` before `make install` makes it take seconds.

## The loop

```bash
tito module list             # the modules and their points
tito module start {number}         # your working copy: {work}
jupyter lab {work}    # as root (a container, Codespaces): add --allow-root
                             # edit: replace each `raise NotImplementedError()` with your code
tito module complete {number}      # runs YOUR notebook in a kernel, reports every graded test,
                             # exports YOUR code into {export}
tito module status           # not started / in progress (k/n tests passing) / \
tests passing, exported
tito test {number}                 # the package's tests against your export \
(`make test`: every module)
```

`tito module complete` exits non-zero while any graded test fails or any cell errors, and
names each failing cell by its grade id with the first line of the failure: edit, and run it
again until it says complete. Each cell gets {student_timeout} s there (the grader allows
{grader_timeout} s); the run stops at the first cell that takes longer, which usually means an
endless loop. Your code is exported only when every exported cell compiles, so a syntax error
never leaves a broken package behind.

**Test cells are the grader's.** The grader puts back every locked cell (the tests and the code
given to you) exactly as it was handed out, whatever your copy says. `tito module complete` does
the same and names any such cell you deleted, changed or duplicated; it says complete only
when every one is as handed out. To get one back, copy it from `{release}`.
The measurements, plots and experiments (cells tagged `skip-execution`) are yours to run in
Jupyter; `tito module complete {number} --demos` runs them too.

**Hidden tests.** Some graded cells carry more tests that only the grader runs (each such
cell's docstring has a line starting `Hidden:` that says what they check). `tito module
complete` lists those cells: a pass here can still lose their points when graded.

**Where your work goes.** Your notebook is `{work}`; `tito module complete` exports
your code into `{export}` (until then its functions raise `NotImplementedError`),
where the next modules import it from. Commit both; `.tito/` (your progress on this machine) is
not tracked. `{release}` stays as it was handed out: `tito module start {number}
--force` resets your copy from it and keeps a timestamped backup of yours. Module 01
(`tinytorch/core/tensor.py`) is provided complete.

**Handing in.** `tito module submit {number}` checks your notebook as `complete` does (it
names empty written answers too), then writes the file to hand in, as checked, to
`hand-in/`, and says what to upload. In a course that collects from git:
`git add {work} {export}`, `git commit -m "module {number}"`, `git push`.
"""


def build(course: Course, dest: Path) -> Path:
    """Write the student edition into `dest` (new or empty), or leave nothing at all."""
    dest = Path(dest).resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise CourseError(
            f"{dest} is not an empty folder: the student edition goes into a new or empty "
            "folder, and nothing there was changed"
        )
    if not dest.parent.is_dir():
        raise CourseError(
            f"{dest.parent} does not exist: create it, or choose another place for the edition"
        )
    staging = dest.with_name(f".{dest.name}.building-{os.getpid()}")
    staging.mkdir()
    try:
        _write(course, staging)
        if dest.exists():
            dest.rmdir()
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _write(course: Course, root: Path) -> None:
    src = course.root
    for m in course.modules:
        release = course.release_notebook(m)
        if not release.is_file():
            raise CourseError(
                f"no student version of {m.name} at {release}: make it with "
                f"`tito nbgrader generate {m.name}`"
            )
        if SOLUTION_BEGIN in release.read_text(encoding="utf-8"):
            raise CourseError(f"{release} holds solution markers: it is not a student version")
        _copy(release, root / "modules" / m.name / release.name)
        if (release.parent / FINGERPRINTS_FILE).is_file():
            _copy(release.parent / FINGERPRINTS_FILE, root / "modules" / m.name / FINGERPRINTS_FILE)
        _copy_tests(src / "tests" / m.name, root / "tests" / m.name)
    for rel in TITO_FILES:
        _copy(TITO.parent / rel, root / rel)  # this tool's own code
    (root / "tito/main.py").write_text(MAIN, encoding="utf-8")
    for rel in ["tinytorch/__init__.py", "tinytorch/core/__init__.py"]:
        _copy(src / rel, root / rel)
    shutil.copytree(
        src / "experiments", root / "experiments", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / SETTINGS_FILE).write_text(_settings(course), encoding="utf-8")
    (root / "pyproject.toml").write_text(_pyproject(src / "pyproject.toml"), encoding="utf-8")
    (root / "Makefile").write_text(MAKEFILE, encoding="utf-8")
    (root / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    # Each module's export is what nbdev makes of its student notebook, from where the student
    # will edit it (the file's header names that notebook).
    edition = Course(root)
    for m in edition.modules:
        export_notebook(edition, start(edition, m)[0], m)
    shutil.rmtree(edition.directory("workspace"))
    graded = next((m for m in edition.modules if points(edition, m)), edition.modules[-1])
    work = edition.workspace_notebook(graded).relative_to(root)
    (root / "README.md").write_text(
        README.format(
            course_id=course.course_id,
            number=graded.number,
            work=work,
            export=graded.export.relative_to(root),
            release=edition.release_notebook(graded).relative_to(root),
            student_timeout=course.student_cell_timeout,
            grader_timeout=course.cell_timeout,
        ),
        encoding="utf-8",
    )


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _copy_tests(src: Path, dst: Path) -> None:
    """A module's package tests, without what reads instructor files or checks beyond the grader."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir() or "__pycache__" in rel.parts or path.name.startswith("make_"):
            continue
        if path.suffix != ".py":
            _copy(path, dst / rel)
            continue
        text = path.read_text(encoding="utf-8").split(LIVE_TORCH_SECTION)[0].rstrip() + "\n"
        if "pytest.mark.instructor" in text or re.search(r"^(from|import) tito", text, re.M):
            # the reference's extra properties, or a test that reads the instructor's notebooks
            continue
        if found := INSTRUCTOR_FILES.search(text):
            raise CourseError(
                f"{path} reads instructor files ({found.group(0)}), which the student edition "
                "does not have"
            )
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_text(text, encoding="utf-8")


def _settings(course: Course) -> str:
    lines = [
        f"# settings.ini of the student edition of {course.course_id} "
        "(made by `tito release student`).",
        "",
        "[course]",
        f"course_id = {course.course_id}",
        "# Modules in teaching order; each has a [module:NAME] section below.",
        f"modules = {' '.join(m.name for m in course.modules)}",
        "",
        "[directories]",
        "# The student notebooks as handed out; `tito module start` copies one into workspace/.",
        "modules = modules",
        "release = modules",
        "# The package that `tito module complete` exports your code into.",
        f"package = {course.directory('package').relative_to(course.root)}",
        "# Your working copies.",
        "workspace = workspace",
        "",
        "[grading]",
        "# The grader's time limit for each cell (for messages; the grader has its own copy).",
        f"cell_timeout_seconds = {course.cell_timeout}",
        "",
        "[student]",
        "# Time limit for each cell that `tito module complete` runs.",
        f"cell_timeout_seconds = {course.student_cell_timeout}",
    ]
    for m in course.modules:
        lines += [
            "",
            f"[module:{m.name}]",
            f"title = {m.title}",
            f"source = modules/{m.name}/{m.notebook}.ipynb",
            f"notebook = {m.notebook}",
            f"export = {m.export.relative_to(course.root)}",
            f"depends = {' '.join(m.depends)}".rstrip(),
        ]
    return "\n".join(lines) + "\n"


def _pyproject(path: Path) -> str:
    """The edition's pyproject.toml: the instructor's project, renamed, with the student
    dependencies."""
    cfg = tomllib.loads(path.read_text(encoding="utf-8"))
    project, extras = cfg["project"], cfg["project"].get("optional-dependencies", {})

    def pick(names, specs):
        found = {re.match(r"[A-Za-z0-9_.-]+", s).group(0).lower(): s for s in specs}
        missing = [n for n in names if n not in found]
        if missing:
            raise CourseError(
                f"{path} does not list {', '.join(missing)}, which the student edition installs"
            )
        return [found[n] for n in names]

    sections = {
        "build-system": cfg["build-system"],
        "project": {
            "name": f"{project['name']}-student",
            "version": project["version"],
            "description": f"{project['description']} (student edition)",
            "readme": "README.md",
            "requires-python": project["requires-python"],
            "license": project["license"],
            "dependencies": pick(DEPENDENCIES, project["dependencies"]) + [EDITOR],
        },
        "project.optional-dependencies": {"test": pick(TEST_DEPENDENCIES, extras.get("test", []))},
        "project.scripts": project["scripts"],
        "tool.setuptools.packages.find": {"include": ["tinytorch*", "tito*", "experiments*"]},
        "tool.setuptools.package-data": {
            "experiments": cfg["tool"]["setuptools"]["package-data"]["experiments"]
        },
        # nbdev exports the working copies in workspace/ into the package.
        "tool.nbdev": {**cfg["tool"]["nbdev"], "nbs_path": "workspace"},
        "tool.pytest.ini_options": {"testpaths": ["tests"], "addopts": "-ra"},
    }
    # Every value here is a string, a boolean or a list of strings, which JSON writes as TOML does.
    return "\n".join(
        f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
        for name, table in sections.items()
    )
