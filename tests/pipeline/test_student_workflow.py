"""A student's round trip with the real CLI: start, complete (real kernel), export their own code."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from tests.conftest import make_course_copy
from tito.course import student
from tito.course.generate import generate
from tito.course.grading.submissions import filled
from tito.course.settings import Course
from tito.main import app

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture()
def course(tmp_path, monkeypatch):
    c = Course(make_course_copy(tmp_path / "repo"))
    generate(c, c.module("06"))
    monkeypatch.chdir(c.root)
    return c


def test_complete_without_a_working_copy_says_how_to_start(course):
    result = runner.invoke(app, ["module", "complete", "06"])
    assert result.exit_code == 1
    assert "tito module start 06_optimizers" in result.output


def test_start_never_overwrites_a_working_copy_and_force_keeps_a_backup(course):
    assert runner.invoke(app, ["module", "start", "06"]).exit_code == 0
    work = course.workspace_notebook(course.module("06"))
    work.write_text("my precious work")
    again = runner.invoke(app, ["module", "start", "06_optimizers"])
    assert again.exit_code == 1 and "already exists" in again.output
    assert work.read_text() == "my precious work"
    forced = runner.invoke(app, ["module", "start", "06", "--force"])
    assert forced.exit_code == 0
    backups = list(work.parent.glob("optimizers.backup-*.ipynb"))
    assert [b.read_text() for b in backups] == ["my precious work"]
    assert work.read_bytes() == course.release_notebook(course.module("06")).read_bytes()


def test_untouched_work_fails_every_test_and_exports_the_students_stubs(course):
    m = course.module("06")
    runner.invoke(app, ["module", "start", "06"])
    # As a student runs it, in a terminal process of its own: the kernel's stderr is seen too.
    result = subprocess.run([str(Path(sys.executable).parent / "tito"), "module", "complete", "06"],
                            cwd=course.root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Tests passed: 0/45 (0/92 automatic points)" in result.stdout
    assert "NotImplementedError" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr, result.stderr[-2000:]
    # Readable in an 80-column terminal, with every test id whole.
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    release = nbformat.read(course.release_notebook(m), as_version=4)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in release.cells
           if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    assert len(ids) == 45 and [i for i in ids if f"│ {i} " not in result.stdout] == []
    exported = m.export.read_text()
    assert "File to edit: ../../workspace/06_optimizers/optimizers.ipynb" in exported
    assert "raise NotImplementedError()" in exported
    assert student.state(course, m) == "in progress (0/45 tests passing)"


def test_completed_work_passes_and_exports_the_students_code(course):
    m = course.module("06")
    runner.invoke(app, ["module", "start", "06"])
    work = course.workspace_notebook(m)
    done = filled(nbformat.read(work, as_version=4), nbformat.read(course.source_notebook(m), as_version=4))
    nbformat.write(done, work)
    result = runner.invoke(app, ["module", "complete", "06"])
    assert result.exit_code == 0, result.output
    assert "Tests passed: 45/45 (92/92 automatic points)" in result.output
    hidden = " ".join(result.output.split("6 of these cells also have hidden tests")[1].split())
    assert hidden.startswith("that only the grader runs")
    for grade_id in ["sgd_matches_pytorch_trajectory", "adam_matches_pytorch_trajectory", "clip_matches_pytorch",
                     "scheduler_drives_optimizer_lr", "warmup_constant_after_total"]:
        assert grade_id in hidden.replace(" ", "")
    exported = m.export.read_text()
    assert "File to edit: ../../workspace/06_optimizers/optimizers.ipynb" in exported
    assert "raise NotImplementedError()" not in exported
    assert student.state(course, m) == "tests passing, exported"
    status = runner.invoke(app, ["module", "status"])
    assert "tests passing, exported" in status.output and "not started" not in status.output.split("06_optimizers")[1]


def test_demonstrations_run_only_when_asked(tmp_path):
    """Cells tagged skip-execution stay out of `tito module complete` unless --demos is given."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("ran = ['always']"),
                nbformat.v4.new_code_cell("ran.append('demo')", metadata={"tags": ["skip-execution"]}),
                nbformat.v4.new_code_cell("print(ran)")]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    for demos, printed in [(False, "['always']\n"), (True, "['always', 'demo']\n")]:
        executed, result = student.run_notebook(Course(), path, demos=demos)
        assert result.errors == []
        assert executed.cells[2].outputs[0]["text"] == printed
