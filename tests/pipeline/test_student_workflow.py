"""A student's round trip in a fresh student edition, with the edition's own `tito` run as a
student runs it: start, complete (a real kernel), submit, and what the check says about each
ordinary mistake (exit code, message, no traceback, the last good export kept)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
from typer.testing import CliRunner

from tests import submissions as sub
from tests.conftest import REPO
from tito.course import student
from tito.course.notebooks import filled
from tito.course.settings import Course
from tito.main import app

pytestmark = pytest.mark.slow
INSTRUCTOR = Course(REPO)  # where the reference solutions come from


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    dest = tmp_path_factory.mktemp("edition") / "tinytorch-student"
    result = CliRunner().invoke(app, ["release", "student", str(dest)])
    assert result.exit_code == 0, result.output
    return dest


@pytest.fixture()
def course(edition, tmp_path):
    root = tmp_path / "tinytorch-student"
    shutil.copytree(edition, root)
    return Course(root)


def tito(course: Course, *args: str) -> subprocess.CompletedProcess:
    """The edition's own `tito`, in a terminal process of its own in the edition's folder (its
    tito and package first on the path, for the command and for the notebook's kernel)."""
    return subprocess.run(
        [sys.executable, "-m", "tito.main", *args],
        cwd=course.root,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(course.root)},
    )


def test_complete_without_a_working_copy_says_how_to_start(course):
    result = tito(course, "module", "complete", "06")
    assert result.returncode == 1
    assert "tito module start 06_optimizers" in result.stdout + result.stderr


def test_start_never_overwrites_a_working_copy_and_force_keeps_a_backup(course):
    assert tito(course, "module", "start", "06").returncode == 0
    work = course.workspace_notebook(course.module("06"))
    work.write_text("my precious work")
    again = tito(course, "module", "start", "06_optimizers")
    assert again.returncode == 1 and "already exists" in again.stdout + again.stderr
    assert work.read_text() == "my precious work"
    forced = tito(course, "module", "start", "06", "--force")
    assert forced.returncode == 0
    backups = list(work.parent.glob("optimizers.backup-*.ipynb"))
    assert [b.read_text() for b in backups] == ["my precious work"]
    assert work.read_bytes() == course.release_notebook(course.module("06")).read_bytes()


def test_untouched_work_fails_every_test_and_exports_the_students_stubs(course):
    m = course.module("06")
    tito(course, "module", "start", "06")
    result = tito(course, "module", "complete", "06")  # the kernel's stderr is seen too
    assert result.returncode == 1
    assert "Tests passed: 0/45 (0/92 automatic points)" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    # Readable in an 80-column terminal: one row per part not started, no list of 45 failures.
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    rows = [
        line.strip("│ ").split(" │ ") for line in result.stdout.splitlines() if line.startswith("│")
    ]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["Part 1", "6", "not started (4 tests)"],
        ["Part 2", "20", "not started (9 tests)"],
        ["Part 3", "26", "not started (13 tests)"],
        ["Part 4", "14", "not started (9 tests)"],
        ["Part 5", "16", "not started (8 tests)"],
        ["Part 6", "10", "not started (2 tests)"],
    ]
    said = " ".join(result.stdout.split())
    assert (
        said.count("NotImplementedError") == 1
        and "other cell(s) stop at code not written yet" in said
    )
    assert "4 written answer(s) still empty (8 points, graded by hand)" in said
    assert said.endswith(
        "Not complete yet: fix the failures above and run this again. "
        "Next: Part 1: Gradient descent step, starting with `gd_step_values`."
    )
    exported = m.export.read_text()
    assert "File to edit: ../../workspace/06_optimizers/optimizers.ipynb" in exported
    assert "raise NotImplementedError()" in exported
    assert student.state(course, m) == "in progress (0/45 tests passing)"


def test_completed_work_passes_and_exports_the_students_code(course):
    m = course.module("06")
    tito(course, "module", "start", "06")
    work = course.workspace_notebook(m)
    done = filled(
        nbformat.read(work, as_version=4),
        nbformat.read(INSTRUCTOR.source_notebook(m), as_version=4),
    )
    nbformat.write(done, work)
    result = tito(course, "module", "complete", "06")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Tests passed: 45/45 (92/92 automatic points)" in out
    # Every test id whole in its row, in 80 columns.
    assert max(len(line) for line in out.splitlines()) <= 80
    release = nbformat.read(course.release_notebook(m), as_version=4)
    ids = [
        c.metadata["nbgrader"]["grade_id"]
        for c in release.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    ]
    assert len(ids) == 45 and [i for i in ids if f"│ {i} " not in out] == []
    hidden = " ".join(out.split("6 of these cells also have hidden tests")[1].split())
    assert hidden.startswith("that only the grader runs")
    for grade_id in [
        "sgd_matches_pytorch_trajectory",
        "adam_matches_pytorch_trajectory",
        "clip_matches_pytorch",
        "scheduler_drives_optimizer_lr",
        "warmup_constant_after_total",
    ]:
        assert grade_id in hidden.replace(" ", "")
    exported = m.export.read_text()
    assert "File to edit: ../../workspace/06_optimizers/optimizers.ipynb" in exported
    assert "raise NotImplementedError()" not in exported
    assert student.state(course, m) == "tests passing, exported"
    status = tito(course, "module", "status").stdout
    assert (
        "tests passing, exported" in status
        and "not started" not in status.split("06_optimizers")[1]
    )


def test_demonstrations_run_only_when_asked(tmp_path):
    """Cells tagged skip-execution stay out of `tito module complete` unless --demos is given."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("ran = ['always']"),
        nbformat.v4.new_code_cell("ran.append('demo')", metadata={"tags": ["skip-execution"]}),
        nbformat.v4.new_code_cell("print(ran)"),
    ]
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    for demos, printed in [(False, "['always']\n"), (True, "['always', 'demo']\n")]:
        executed, result = student.run_notebook(Course(), path, demos=demos)
        assert result.errors == []
        assert executed.cells[2].outputs[0]["text"] == printed


# -- the check runs what the grader runs, and says so -------------------------------------------


def _complete(course: Course):
    """`tito module complete 06` as a student runs it; its exit code and its words on one line."""
    return _complete_with(course, "complete")


def _complete_with(course: Course, command: str):
    result = tito(course, "module", command, "06")
    return result.returncode, " ".join(result.stdout.split()), result.stderr


def _work(course: Course, edit):
    """A complete working copy, then `edit` applied to it."""
    m = course.module("06")
    tito(course, "module", "start", "06")
    work = course.workspace_notebook(m)
    done = filled(
        nbformat.read(work, as_version=4),
        nbformat.read(INSTRUCTOR.source_notebook(m), as_version=4),
    )
    nbformat.write(edit(done), work)
    return m


def test_deleted_edited_or_duplicated_test_cells_are_named_and_run_as_released(course):
    """The grader restores locked cells, so the check does too: a gutted test still runs, and
    fails, as released; `complete` is refused until every test cell is as released."""

    def edit(nb):
        nb = sub.without_cell(nb, "clip_inf_norm")
        nb = sub.set_source(
            nb, "gd_step_values", '"""gradient_descent_step subtracts lr * grad."""\npass'
        )
        nb = sub.with_duplicate(nb, "step_lr_values")
        # and a wrong step, so that a test fails with arrays in its message: [nan nan nan]
        return sub.replace_region(
            nb,
            "gradient_descent_step_impl",
            "if param.grad is None:\n    return\nparam.data -= np.nan * param.grad",
        )

    _work(course, edit)
    code, out, err = _complete(course)
    assert code == 1, out
    for said in [
        "`clip_inf_norm` was deleted: the grader puts the original back",
        "`gd_step_values` was changed: the grader runs the original",
        "`step_lr_values` appears twice: the grader keeps the first and drops the copy",
    ]:
        assert f"test cell not as released: {said}" in out
    assert (
        "Tests passed: 41/45" in out
    )  # the restored gd_step_values fails like three more gd tests
    assert (
        "gd_step_values (2 pts): AssertionError: param is [nan nan nan], expected [0.95, -1.9, 0.3]"
        in out
    ), out
    assert "Not complete yet" in out and "06_optimizers complete" not in out
    assert "Traceback" not in out + err


def test_a_syntax_error_keeps_the_last_export_and_names_the_cell_and_line(course):
    m = _work(course, lambda nb: nb)
    assert _complete(course)[0] == 0
    good = m.export.read_bytes()
    nbformat.write(
        sub.replace_region(
            nbformat.read(course.workspace_notebook(m), as_version=4),
            "sgd_step_impl",
            "d_p = grad\nif momentum != 0\n    pass",
        ),
        course.workspace_notebook(m),
    )
    code, out, err = _complete(course)
    assert code == 1
    assert (
        "error outside the tests: `sgd_step_impl`, line" in out
        and "SyntaxError: expected ':'" in out
    ), out
    assert "(not exported: the last export stays)" in out and "Your code was not exported" in out
    assert m.export.read_bytes() == good
    assert "Traceback" not in out + err and "renamed?" not in out


def test_a_corrupt_notebook_gets_one_line_that_says_how_to_start_again(course):
    m = _work(course, lambda nb: nb)
    course.workspace_notebook(m).write_text('{"cells": [', encoding="utf-8")
    code, out, err = _complete(course)
    assert code == 1
    assert (
        "is not a readable notebook" in out + err
        and "tito module start 06_optimizers --force" in out + err
    )
    assert "Traceback" not in out + err and "Warning" not in err and len((out + err).strip()) < 600


def test_an_endless_loop_is_named_with_the_time_limit_and_stops_the_run(course):
    """[student] cell_timeout_seconds (here 3 s) is well below the grader's 60 s; the run stops at
    the first cell that reaches it instead of letting every later cell wait as long."""
    settings = course.root / "settings.ini"
    text = settings.read_text(encoding="utf-8")
    assert "\n[student]\n" in text
    settings.write_text(
        re.sub(r"(\[student\][^\[]*?cell_timeout_seconds = )\d+", r"\g<1>3", text), encoding="utf-8"
    )
    _work(course, lambda nb: sub.replace_region(nb, "step_lr_impl", "while True:\n    pass"))
    code, out, err = _complete(course)
    assert code == 1
    # The first cell to call step_lr is the demonstration after it (not a graded cell).
    first = "the cell starting `w = Tensor(np.array([1.0]), requires_gra`"
    assert (
        f"error outside the tests: {first}: ran longer than 3 s and was stopped: an endless loop? "
        "(the grader allows 60 s)"
    ) in out, out
    assert (
        f"step_lr_values (3 pts): not run: the run stopped after {first} ran longer than 3 s" in out
    )
    assert "KeyboardInterrupt" not in out and "Traceback" not in out + err


def test_an_exported_cell_that_fails_when_it_runs_keeps_the_last_export(course):
    """It compiles, but importing the package would fail: the last export stays."""
    m = _work(course, lambda nb: nb)
    assert _complete(course)[0] == 0
    good = m.export.read_bytes()
    work = nbformat.read(course.workspace_notebook(m), as_version=4)
    nbformat.write(
        sub.insert_code_cell(work, "sgd_step_impl", "#| export\nundefined_helper()"),
        course.workspace_notebook(m),
    )
    code, out, err = _complete(course)
    assert code == 1
    assert (
        "error outside the tests: the cell starting `undefined_helper()`: "
        "NameError: name 'undefined_helper' "
        "is not defined (not exported: the last export stays)"
    ) in out, out
    assert "Your code was not exported" in out
    assert m.export.read_bytes() == good


def test_submit_writes_the_checked_notebook_and_says_how_to_hand_it_in(course):
    m = _work(course, lambda nb: nb)
    subprocess.run(["git", "init", "-q"], cwd=course.root, check=True)
    code, out, err = _complete_with(course, "submit")
    assert code == 0, out
    handed = course.root / "hand-in" / "06_optimizers" / "optimizers.ipynb"
    assert handed.read_bytes() == course.workspace_notebook(m).read_bytes()
    assert (
        "The notebook to hand in, as it was checked: hand-in/06_optimizers/optimizers.ipynb" in out
    )
    assert (
        "git add workspace/06_optimizers/optimizers.ipynb tinytorch/core/optimizers.py && "
        'git commit -m "06_optimizers" && git push'
    ) in out
    assert out.endswith("06_optimizers complete and ready to hand in.")
    nbformat.write(
        sub.replace_region(
            nbformat.read(course.workspace_notebook(m), as_version=4),
            "step_lr_impl",
            "return base_lr",
        ),
        course.workspace_notebook(m),
    )
    code, out, err = _complete_with(course, "submit")
    assert code == 3 and out.endswith(
        "Not complete yet: what you hand in now is graded as it is."
    ), out
    assert handed.read_bytes() == course.workspace_notebook(m).read_bytes()


def test_a_step_counter_from_zero_in_another_spelling_is_named_as_the_known_mistake(course):
    """A step counter used before it is incremented, written with Python floats, divides by zero
    where the catalogue's wrong version (numpy) gives inf: the same mistake, named in the failing
    test's message and once more under the table, from the release's fingerprints."""
    body = (
        'step = state["step"]\nexp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]\n'
        "exp_avg *= beta1\nexp_avg += (1 - beta1) * grad\nexp_avg_sq *= beta2\n"
        "exp_avg_sq += (1 - beta2) * grad * grad\n"
        "param -= lr / (1 - beta1 ** step) * exp_avg / (np.sqrt(exp_avg_sq) + eps)\n"
        'state["step"] += 1'
    )
    _work(course, lambda nb: sub.replace_region(nb, "adam_step_impl", body))
    code, out, err = _complete(course)
    assert code == 1
    said = " ".join(out.split())
    mistake = (
        'uses state["step"] before incrementing it, so the first update has t = 0 or corrects '
        "with 1 - beta**(t - 1) instead of 1 - beta**t"
    )
    assert (
        "adam_first_step_moves_lr (3 pts): AssertionError: the first step divided by zero "
        f"(float division by zero). Your adam_step behaves like a known mistake: {mistake}."
    ) in said, out
    assert said.count(f"your adam_step behaves like: {mistake}") == 1, out
    assert "Traceback" not in out + err


def test_an_error_inside_the_students_function_is_placed_by_cell_and_line(course):
    """An error the tests do not expect names the solution cell, the line in it and the
    function, not only the test."""
    _work(
        course,
        lambda nb: sub.replace_region(nb, "sgd_step_impl", "d_p = grad\nparam -= lr * d_p[7]"),
    )
    code, out, err = _complete(course)
    assert code == 1
    # Line 11 of the cell as Jupyter numbers it: the second line written after `### BEGIN SOLUTION`.
    assert (
        "sgd_plain_step_values (2 pts): "
        "IndexError: index 7 is out of bounds for axis 0 with size 3 "
        "(in `sgd_step_impl`, line 11, sgd_step)"
    ) in out, out
    assert "Traceback" not in out + err


def test_a_renamed_function_is_named_with_the_cell_that_defined_it(course):
    def rename(nb):
        cell = next(
            c
            for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id") == "adam_step_impl"
        )
        return sub.set_source(
            nb, "adam_step_impl", cell.source.replace("def adam_step(", "def adam_update(")
        )

    _work(course, rename)
    code, out, err = _complete(course)
    assert code == 1
    assert (
        "error outside the tests: `adam_step_impl`: "
        "`adam_step` is not defined any more (renamed?), and the "
        "tests call it by that name"
    ) in out, out
    assert "adam_first_step_moves_lr (3 pts): NameError: name 'adam_step' is not defined" in out
    assert "Traceback" not in out + err


def test_a_kernel_that_dies_before_it_first_answers_is_started_once_more(tmp_path, monkeypatch):
    """On a busy machine a kernel can die before its first answer (another program took a port
    it was given); no code of the student's has run, so the check starts it once more. Twice in
    a row is an error that names the kernel."""
    from nbclient import NotebookClient

    path = tmp_path / "work.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 6 * 7")]
    nbformat.write(nb, path)
    real, starts = NotebookClient.start_new_kernel_client, []

    def dies_first(self, *args, **kwargs):
        starts.append(self.km.kernel_id)
        if len(starts) in failing:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(NotebookClient, "start_new_kernel_client", dies_first)
    failing = {1}
    executed, _ = student.run_notebook(INSTRUCTOR, path)
    assert len(starts) == 2 and starts[0] != starts[1]  # a new kernel the second time
    assert executed.cells[0].execution_count == 1
    starts.clear()
    failing = {1, 2}
    with pytest.raises(student.CourseError, match="the notebook's kernel could not start: "):
        student.run_notebook(INSTRUCTOR, path)
    assert len(starts) == 2
