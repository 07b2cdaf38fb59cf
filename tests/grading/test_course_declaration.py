"""The grader knows the course only through settings.ini's [package]: it imports no course
package when it is imported, gives the jail exactly the declared files, and a broken export
breaks only what uses it."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from tests.conftest import REPO, make_course_copy
from tito.course.grading.host import student_package
from tito.course.settings import Course, CourseError

GRADING = REPO / "tito" / "course" / "grading"


def module_level_imports(path: Path) -> set[str]:
    """Top-level names of the modules a file imports outside any function or class."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        nodes = [node] + (list(ast.walk(node)) if isinstance(node, (ast.If, ast.Try)) else [])
        for n in nodes:
            if isinstance(n, ast.Import):
                names |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                names.add(n.module.split(".")[0])
    return names


def test_the_grader_imports_no_course_package_at_module_level():
    course = Course(REPO)
    packages = {
        course.directory("package").name,
        course.package.tensor_class.split(".")[0],
        "experiments",
    }
    files = sorted(GRADING.rglob("*.py"))
    assert len(files) > 15 and GRADING / "jailed" / "protocol.py" in files
    assert {
        str(p.relative_to(REPO)): sorted(module_level_imports(p) & packages)
        for p in files
        if module_level_imports(p) & packages
    } == {}
    # and none is imported by importing it all (nothing else brings one in on the way)
    code = (
        "import sys, tito.main, tito.course.grading.host, tito.course.grading.job, "
        "tito.course.grading.jailed.sandbox; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(packages)!r}))"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
        ).stdout.strip()
        == "[]"
    )


def test_the_jail_gets_the_declared_files_and_nothing_else(tmp_path):
    course = Course(REPO)
    assert sorted(student_package(course)) == [
        "tinytorch/__init__.py",
        "tinytorch/core/__init__.py",
        "tinytorch/core/tensor.py",
    ]
    assert (
        student_package(course)["tinytorch/core/tensor.py"]
        == (REPO / "tinytorch/core/tensor.py").read_text()
    )
    copy = Course(make_course_copy(tmp_path / "course"))
    settings = copy.root / "settings.ini"
    declared = settings.read_text()
    for files, refusal in [
        ("tinytorch/core/optimizers.py", r"holds a solution \(### BEGIN SOLUTION\)"),
        ("tinytorch/../settings.ini", r"not a \.py file of the package folder tinytorch/"),
        ("/etc/passwd", r"not a \.py file of the package folder tinytorch/"),
    ]:
        settings.write_text(
            declared.replace("jail_files = tinytorch/__init__.py", f"jail_files = {files}")
        )
        with pytest.raises(CourseError, match=refusal):
            student_package(Course(copy.root))
    settings.write_text(declared)
    (copy.root / "tinytorch/core/tensor.py").unlink()
    with pytest.raises(
        CourseError,
        match=r"\[package\] jail_files names tinytorch/core/tensor.py, which cannot "
        r"be read .*`tito export --all` writes the package",
    ):
        student_package(copy)


@pytest.mark.slow
def test_a_broken_export_leaves_the_commands_that_repair_it_working(tmp_path):
    root = make_course_copy(tmp_path / "course")
    tensor = root / "tinytorch/core/tensor.py"
    good = tensor.read_text()
    tensor.write_text(good + "\ndef broken(:\n")
    env_python = [sys.executable, "-m", "tito.main"]

    def tito(*args):
        return subprocess.run(
            [*env_python, *args], cwd=root, capture_output=True, text=True, timeout=300
        )

    listed = tito("module", "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "01_tensor" in listed.stdout and "06_optimizers" in listed.stdout
    exported = tito("export", "01")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert tensor.read_text() == good  # regenerated from modules/01_tensor


@pytest.mark.slow
def test_a_job_judges_with_the_package_copy_it_was_given(tmp_path):
    """On a Dask worker the installed package may differ from the head's: the job's trusted side
    imports the tensor class from the copy that came with the job, as its jails do."""
    import nbformat

    from tito.course.grading.job import Job, run_in_process

    course = Course(REPO)
    package = student_package(course)
    package["tinytorch/core/tensor.py"] += "\nCOPY_SENT_WITH_THE_JOB = True\n"
    export = nbformat.v4.new_code_cell("#| export\ndef half(x: float) -> float:\n    return x / 2")
    graded = nbformat.v4.new_code_cell(
        "import tinytorch.core.tensor as t\n"
        "assert getattr(t, 'COPY_SENT_WITH_THE_JOB', False), t.__file__\n"
        "assert half(3.0) == 1.5",
        metadata={
            "nbgrader": {
                "grade": True,
                "solution": False,
                "locked": True,
                "grade_id": "copy",
                "points": 1,
                "schema_version": 3,
            }
        },
    )
    notebook = nbformat.writes(nbformat.v4.new_notebook(cells=[export, graded]))
    job = Job(
        "student",
        "06_optimizers",
        notebook,
        notebook,
        package,
        course.package.tensor_class,
        {**asdict(course.grading), "cell_timeout_seconds": 20, "submission_timeout_seconds": 120},
    )
    result = run_in_process(job)
    assert result.failure == "", result.failure
    assert [(v["grade_id"], v["passed"], v["message"]) for v in result.verdicts] == [
        ("copy", True, "")
    ]
    # Each stage's time is its own: seconds since the job started, not since time zero.
    assert sorted(result.seconds) == ["judge", "kernel"]
    assert all(0 < s < 120 for s in result.seconds.values()), result.seconds
