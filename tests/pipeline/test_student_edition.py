"""The student edition (`tito release student DIR`): it holds no solution, and a student's loop
works in it."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, make_course_copy
from tito.course import edition as student_edition
from tito.course.catalogue import answers, exported, fingerprint_function, load, release_text
from tito.course.notebooks import (
    FINGERPRINTS_FILE,
    SOLUTION_BEGIN,
    SOLUTION_END,
    filled,
    read_source,
    replace_region,
)
from tito.course.settings import Course, CourseError
from tito.main import app

pytestmark = pytest.mark.slow
runner = CliRunner()
COURSE = Course(REPO)
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"

# A line of a region proves nothing when it could stand in any Python file: blank, or only keywords
# and punctuation (`pass`, `else:`, `)`, `]`), or a `return` of one name or number (`return total`).
# Every other line counts: an assignment, an operator, a call, a word of prose, so
# `m = beta1 * m + (1 - beta1) * grad` does.
TRIVIAL = re.compile(
    r"(\b(pass|return|else|elif|try|except|finally|break|continue|None|True|False)\b"
    r"|[\s()\[\]{},:;.])*|return [\w.]+"
)


def secret_lines() -> set[str]:
    """The lines of every solution and hidden-test region in modules/*_dev.py that would give
    something away.

    A line the instructor also shows outside every region (in a docstring, a hint, a visible test)
    is left out: the edition is meant to contain it.
    """
    secret, shown = set(), []
    for m in COURSE.modules:
        for cell in read_source(m.source).cells:
            end = None
            for line in map(str.strip, cell.source.splitlines()):
                if end is None:
                    end = {SOLUTION_BEGIN: SOLUTION_END, HIDDEN_BEGIN: HIDDEN_END}.get(line)
                    shown.append(line)
                elif line == end:
                    end = None
                elif not TRIVIAL.fullmatch(line):
                    secret.add(line)
        if m.mistakes:  # the catalogue's wrong versions: instructor code, never released (its
            # probes are, and what each wrong version gets wrong: what a failing test says)
            catalogue = load(m.mistakes.read_text(encoding="utf-8"))
            shown += list(catalogue.probes.values())
            for mistake in catalogue.mistakes:
                shown.append(mistake["mistake"])
                secret |= {
                    line
                    for line in map(str.strip, mistake["code"].splitlines())
                    if not TRIVIAL.fullmatch(line)
                }
    shown_text = "\n".join(shown)
    return {line for line in secret if line not in shown_text}


def readable_text(path: Path) -> bytes:
    """What a reader of the file sees: a notebook's (or JSON file's) strings unescaped, an
    archive's members unpacked."""
    if path.suffix in (".ipynb", ".json"):

        def strings(x):
            if isinstance(x, str):
                yield x
            for v in x.values() if isinstance(x, dict) else x if isinstance(x, list) else []:
                yield from strings(v)

        return "\n".join(strings(json.loads(path.read_bytes()))).encode()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return b"\n".join(z.read(name) for name in z.namelist())
    return path.read_bytes()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    dest = tmp_path_factory.mktemp("edition") / "tinytorch-student"
    result = runner.invoke(app, ["release", "student", str(dest)])
    assert result.exit_code == 0, result.output
    return dest


def test_release_refuses_a_folder_that_is_not_empty(tmp_path):
    dest = tmp_path / "term"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["release", "student", str(dest)])
    assert result.exit_code == 1
    assert f"{dest} is not an empty folder" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["term"] and [
        p.name for p in dest.iterdir()
    ] == ["notes.txt"]


def test_a_build_that_fails_leaves_nothing_behind(tmp_path):
    course = Course(make_course_copy(tmp_path / "course"))  # sources only: no student versions yet
    with pytest.raises(
        CourseError, match="no student version of 01_tensor at .*tito nbgrader generate 01_tensor"
    ):
        student_edition.build(course, tmp_path / "edition")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course"]


def test_the_edition_holds_no_solution_no_hidden_test_and_no_instructor_notebook(built):
    secrets = secret_lines()
    # code, hidden tests and written answers count; what the notebook states anyway, and `return
    # total`, do not
    assert {
        "exp_avg *= beta1",
        "param *= 1 - lr * weight_decay  # decay first: PyTorch's order",
        "for options, torch_total, torch_grads in TORCH_CLIP_GRID:",
        "which is why memory-saving optimizers and sharded optimizer state exist.",
        "g *= max_norm / (own + 1e-6)",  # a wrong version of the catalogue
    } <= secrets
    assert {
        "param.data -= lr * param.grad",
        'state["step"] += 1',
        "return total",
        "pass",
        ")",
    }.isdisjoint(secrets)
    assert TRIVIAL.fullmatch("return") and not TRIVIAL.fullmatch(
        "m = beta1 * m + (1 - beta1) * grad"
    )
    files = [p for p in built.rglob("*") if p.is_file()]
    assert [p for p in files if p.suffix == ".pyc" or "__pycache__" in p.parts] == []
    texts = {str(p.relative_to(built)): readable_text(p) for p in files}
    leaks = [
        (name, line) for name, text in texts.items() for line in secrets if line.encode() in text
    ]
    assert leaks == []
    notebooks = sorted(str(p.relative_to(built)) for p in files if p.suffix == ".ipynb")
    assert notebooks == ["modules/01_tensor/tensor.ipynb", "modules/06_optimizers/optimizers.ipynb"]
    for nb in notebooks:
        text = readable_text(built / nb).decode()
        assert SOLUTION_BEGIN not in text and HIDDEN_BEGIN not in text, nb
        assert (built / nb).read_bytes() == (
            REPO / "release" / nb.removeprefix("modules/")
        ).read_bytes()
    assert not any("assignments" in p.parts or p.name.endswith("_dev.py") for p in files)
    # tito without the grader and the instructor commands
    assert sorted(
        str(p.relative_to(built)) for p in files if p.parts[len(built.parts)] == "tito"
    ) == sorted(student_edition.TITO_FILES + ["tito/main.py"])
    assert "dask" not in (built / "pyproject.toml").read_text()


def numbers(code: str) -> set[float]:
    """The numbers written in Python code."""
    return {
        float(n.value)
        for n in ast.walk(ast.parse(code))
        if isinstance(n, ast.Constant) and type(n.value) in (int, float)
    }


def test_the_fingerprints_hold_no_wrong_version_no_reference_answer_and_no_hidden_input(built):
    """What students receive of the catalogue: per function its probe and, per known mistake,
    its id, its text and a fingerprint; no fingerprint of the reference's answers; probes that
    write only numbers the student version's code shows (so no fingerprint comes from a
    hidden test's inputs). The wrong versions' code is checked with every other secret."""
    m = COURSE.module("06")
    released = json.loads((built / "modules" / m.name / FINGERPRINTS_FILE).read_text())
    reference = nbformat.read(COURSE.source_notebook(m), as_version=4)
    assert released == json.loads(release_text(reference, load(m.mistakes.read_text())))
    fingerprint, trusted = fingerprint_function(reference), exported(reference)
    student_version = nbformat.read(built / "modules" / m.name / f"{m.notebook}.ipynb", 4)
    visible = set().union(
        *(numbers(c.source) for c in student_version.cells if c.cell_type == "code")
    )
    hidden_only = (
        set().union(*(numbers(c.source) for c in reference.cells if HIDDEN_BEGIN in c.source))
        - visible
    )
    assert len(hidden_only) > 100  # hidden tests use numbers of their own: the check can fail
    assert sorted(released["functions"]) == sorted(
        ["gradient_descent_step", "sgd_step", "adam_step", "adamw_step", "clip_grad_norm"]
        + ["step_lr", "exponential_lr", "cosine_annealing_lr", "warmup_cosine_lr"]
    )
    for name, entry in released["functions"].items():
        assert set(entry) == {"region", "probe", "mistakes"}
        assert all(set(x) == {"id", "mistake", "fingerprint"} for x in entry["mistakes"])
        assert all(re.fullmatch("[0-9a-f]{20}", x["fingerprint"]) for x in entry["mistakes"])
        mine = fingerprint(answers(entry["probe"], trusted[name], trusted))
        assert mine not in {x["fingerprint"] for x in entry["mistakes"]}, name
        assert numbers(entry["probe"]) <= visible, (name, numbers(entry["probe"]) - visible)


def imported_modules(path: Path) -> set[str]:
    """The top-level names of the modules a Python file imports (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {
        n.module
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module
    }
    return {name.split(".")[0] for name in names}


def test_the_editions_dependencies_provide_everything_its_code_imports(built):
    """Each library that the edition's tito, package or experiments import is one it installs."""
    declared = tomllib.loads((built / "pyproject.toml").read_text())["project"]["dependencies"]
    installs = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in declared}
    own = {"tito", "tinytorch", "experiments", "tests"} | set(sys.stdlib_module_names)
    provided_by = importlib.metadata.packages_distributions()
    files = [
        p for folder in ("tito", "tinytorch", "experiments") for p in (built / folder).rglob("*.py")
    ]
    needed = {
        name: {d.lower() for d in provided_by.get(name, [name])}
        for p in files
        for name in imported_modules(p) - own
    }
    assert {"nbgrader", "nbclient", "typer", "numpy"} <= set(needed)
    assert {name: dists for name, dists in needed.items() if not dists & installs} == {}


def test_the_package_tests_import_the_stub_export_and_fail_on_it(built):
    """Against the unfinished export the students' tests are collected and fail on
    NotImplementedError."""
    stub = (built / "tinytorch/core/optimizers.py").read_text()
    assert stub.startswith(
        "# AUTOGENERATED! DO NOT EDIT! File to edit: "
        "../../workspace/06_optimizers/optimizers.ipynb."
    )
    assert stub.count("raise NotImplementedError()") == 9
    assert sorted(p.name for p in (built / "tests/06_optimizers").iterdir()) == [
        "references",
        "test_clipping.py",
        "test_optimizers_state_dict.py",
        "test_optimizers_torch_reference.py",
        "test_optimizers_unit.py",
        "test_schedulers.py",
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/06_optimizers",
        ],
        cwd=built,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(built)},
    )
    assert result.returncode == 1, result.stdout[
        -2000:
    ]  # 1: a test failed (2 would be an import error)
    assert (
        "E       NotImplementedError" in result.stdout
        and "1 failed" in result.stdout.splitlines()[-1]
    )


ADAM_STEP = """\
import numpy as np, tinytorch
from tinytorch.core.optimizers import Adam
from tinytorch.core.tensor import Parameter
w = Parameter(np.array([1.0, -2.0, 3.0]))
opt = Adam([w], lr=0.1, weight_decay=0.01)
for g in ([0.5, -1.0, 2.0], [0.25, 0.5, -1.0]):
    w.grad = np.array(g)
    opt.step()
print(tinytorch.__file__, repr(w.data.tolist()))
"""


def test_a_student_clones_the_edition_completes_06_and_a_later_module_imports_their_export(
    built, tmp_path
):
    """The student's whole loop, with the edition's own commands, in a repository of its own.

    `make install` uses an existing .venv as it is (the edition's README says so for a machine whose
    Python already has the course's packages). A fresh install downloads them (about 45 s here), so
    the test makes .venv first and lets it see this environment's packages through a .pth line: as
    `--system-site-packages` would, but without processing this environment's own .pth files, so the
    instructor's editable install (its tinytorch and tito) stays out of sight. `make install` then
    installs only the edition itself.
    """
    root = tmp_path / "tinytorch-student"
    subprocess.run(["cp", "-a", str(built), str(root)], check=True)
    bin_ = root / ".venv/bin"
    # As in a fresh terminal: none of this environment's virtualenv, path or (under `make test`)
    # make settings.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    env["PATH"] = f"{bin_}:{env['PATH']}"

    def run(*args, cwd=root, code=0):
        result = subprocess.run(
            [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == code, f"{args}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
        return result.stdout

    git = ["git", "-c", "user.name=Student", "-c", "user.email=student@example.org"]
    run("git", "init", "-q")
    run("git", "add", "-A")
    run(*git, "commit", "-q", "-m", "Student edition")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root / ".venv"], check=True)
    site = Path(
        run(bin_ / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    )
    (site / "course-packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run("make", "install")
    assert sorted(re.findall(r"│ (\w+) ", run(bin_ / "tito", "--help"))) == [
        "experiment",
        "module",
        "test",
    ]
    listed = run(bin_ / "tito", "module", "list")
    assert re.search(r"06_optimizers .* 100 ", listed) and re.search(r"01_tensor .* 0 ", listed), (
        listed
    )
    assert "06_optimizers" in run(bin_ / "tito", "module", "start", "06")

    m = COURSE.module("06")
    work = root / "workspace/06_optimizers/optimizers.ipynb"
    done = filled(
        nbformat.read(work, as_version=4), nbformat.read(COURSE.source_notebook(m), as_version=4)
    )
    nbformat.write(done, work)
    out = run(bin_ / "tito", "module", "complete", "06")
    assert (
        "Tests passed: 45/45 (92/92 automatic points)" in out and "06_optimizers complete." in out
    )
    exported = (root / "tinytorch/core/optimizers.py").read_text()
    assert exported == m.export.read_text().replace("../../assignments/", "../../workspace/")
    status = run(bin_ / "tito", "module", "status").split("06_optimizers")[1]
    assert "tests passing, exported" in " ".join(status.replace("│", " ").split())
    tested = run(bin_ / "tito", "test", "06").splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in [\d.]+s", tested), tested  # every test ran and passed
    assert run("git", "status", "--porcelain", "--untracked-files=all").splitlines() == [
        " M tinytorch/core/optimizers.py",
        "?? workspace/06_optimizers/optimizers.ipynb",
    ]

    # A later module's code imports the student's export from the installed edition.
    theirs = run(bin_ / "python", "-c", ADAM_STEP, cwd=tmp_path).split()
    ours = subprocess.run(
        [sys.executable, "-c", ADAM_STEP], capture_output=True, text=True, check=True
    ).stdout.split()
    assert theirs[0] == str(root / "tinytorch/__init__.py") and ours[0] == str(
        REPO / "tinytorch/__init__.py"
    )
    assert theirs[1:] == ours[1:]

    broken = replace_region(done, "exponential_lr_impl", "return base_lr * gamma ** (epoch + 1)")
    nbformat.write(broken, work)
    out = run(bin_ / "tito", "module", "complete", "06", code=1)
    failed = re.findall(r"│ (\w+) +│ +[\d.]+ │ FAIL", out)
    assert failed == ["exponential_lr_values"], out
    assert "Tests passed: 44/45" in out and "Not complete yet" in out


def test_the_editions_readme_says_what_the_check_runs_and_how_to_hand_in(built):
    text = " ".join((built / "README.md").read_text(encoding="utf-8").split())
    for said in [
        "Each cell gets 10 s there (the grader allows 60 s)",
        "The grader puts back every locked cell (the tests and the code given to you) "
        "exactly as it was handed out",
        "as root (a container, Codespaces): add --allow-root",
        "git add workspace/06_optimizers/optimizers.ipynb tinytorch/core/optimizers.py",
    ]:
        assert said in text, said
