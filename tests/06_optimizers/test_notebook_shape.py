"""The module notebook is mostly teaching: short graded cells that share locked test-support cells.

The figures asked of the source, counted as a reader sees them at 100 columns (a longer line is
two), outside the hidden-test regions: at most 1,700 lines, graded test cells of at most 12
lines on average, no line longer than 100 characters, points unchanged. The support cells'
helpers are checked here on their own, since every graded cell's verdict goes through them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest

from tito.course.notebooks import is_export_cell, is_grade_cell, is_test_support_cell, read_source
from tito.course.settings import Course

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "modules" / "06_optimizers" / "optimizers_dev.py"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def shown(text: str) -> list[str]:
    """The lines of `text` outside hidden-test regions."""
    out, hidden = [], False
    for line in text.split("\n"):
        hidden = hidden or HIDDEN_BEGIN in line
        if not hidden:
            out.append(line)
        hidden = hidden and HIDDEN_END not in line
    return out


def at_100_columns(lines: list[str]) -> int:
    return sum(max(1, math.ceil(len(line) / 100)) for line in lines)


def test_shown_lines_leave_out_hidden_regions_and_count_wide_lines_twice():
    text = "a\n" + "x" * 101 + f"\n{HIDDEN_BEGIN}\nsecret\n{HIDDEN_END}\nb"
    assert shown(text) == ["a", "x" * 101, "b"]
    assert at_100_columns(shown(text)) == 4


def test_the_source_is_at_most_1700_lines_and_graded_cells_at_most_12_on_average():
    nb = read_source(SOURCE)
    graded = [c for c in nb.cells if is_grade_cell(c)]
    lines = shown(SOURCE.read_text(encoding="utf-8").rstrip("\n"))
    mean = sum(at_100_columns(shown(c.source)) for c in graded) / len(graded)
    print(
        f"\n{SOURCE.name}: {at_100_columns(lines)} lines at 100 columns; {len(graded)} graded "
        f"cells, {mean:.1f} lines on average"
    )
    assert at_100_columns(lines) <= 1700
    assert mean <= 12.0
    assert [line for line in lines if len(line) > 100] == []
    points = [
        c.metadata["nbgrader"]["points"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    ]
    assert (len(graded), sum(points)) == (45, 100)  # 92 automatic + 8 for the written answers


def test_graded_cells_hold_no_table_of_known_mistakes():
    """Naming a mistake is the catalogue's (mistakes.yaml): graded cells assert values only."""
    source = SOURCE.read_text(encoding="utf-8")
    assert "hint_for" not in source and "known = {" not in source


def test_support_cells_are_locked_instructor_code_that_the_student_version_keeps_unchanged():
    course = Course(REPO)
    m = course.module("06")
    source = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in read_source(SOURCE).cells
        if is_test_support_cell(c)
    }
    assert sorted(source) == ["test_support", "test_support_training"]
    assert not any(is_export_cell(c) or is_grade_cell(c) for c in source.values())
    released = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in nbformat.read(course.release_notebook(m), as_version=4).cells
        if is_test_support_cell(c)
    }
    assert {g: c.source for g, c in released.items()} == {g: c.source for g, c in source.items()}
    assert all(c.metadata["nbgrader"].get("checksum") for c in released.values())


@pytest.fixture(scope="module")
def support():
    """The namespace the judge gives a graded cell: the package's names, then the support cells."""
    from tinytorch.core import optimizers

    namespace = {"np": np, **{k: v for k, v in vars(optimizers).items() if not k.startswith("_")}}
    for cell in read_source(SOURCE).cells:
        if is_test_support_cell(cell):
            exec(cell.source, namespace)
    return namespace


def test_describe_difference_names_the_largest_difference_and_where_it_is(support):
    describe_difference = support["describe_difference"]
    assert (
        describe_difference(np.array([0.1, 0.2, 0.3 + 1e-9]), [0.1, 0.2, 0.3])
        == " (largest difference 1e-09 at index 2: 0.300000001, expected 0.3)"
    )
    assert (
        describe_difference(np.array([[1.0, 2.0], [3.0, np.nan]]), [[1, 2], [3, 4]])
        == " (largest difference inf at index (1, 1): nan, expected 4.0)"
    )
    assert describe_difference(0.5, 0.25) == " (largest difference 0.25: 0.5, expected 0.25)"
    assert (
        describe_difference([0.001, 0.002], 0.001)
        == " (largest difference 0.001 at index 1: 0.002, expected 0.001)"
    )
    assert describe_difference(None, [1.0]) == " (got None)"
    assert describe_difference("x", 1.0) == " (got a str, not numbers)"
    assert describe_difference(np.zeros(3), np.zeros(2)) == " (shape (3,), expected shape (2,))"


def test_check_close_passes_equal_values_and_refuses_other_shapes_empty_arrays_nan_and_non_numbers(
    support,
):
    check_close = support["check_close"]
    check_close(np.array([0.95, -1.9]), [0.95, -1.9], "param")
    check_close([0.001, 0.001], 0.001, "the rates")  # a number is compared with every element
    with pytest.raises(AssertionError) as e:
        check_close(np.array([1.05, -1.9]), np.array([0.95, -1.9]), "param", " It moved uphill.")
    assert str(e.value) == (
        "param is [ 1.05 -1.9 ], expected [ 0.95 -1.9 ]. It moved uphill. "
        "(largest difference 0.1 at index 0: 1.05, expected 0.95)"
    )
    for wrong in (
        np.array([0.95, -1.9, 0.0]),
        np.array([]),
        np.array([np.nan, -1.9]),
        None,
        {"a": 1},
        "0.95",
        np.array([0.95 + 1j, -1.9 + 1j]),
        ["0.95", "-1.9"],
    ):  # complex or text: not real numbers
        with pytest.raises(AssertionError):
            check_close(wrong, [0.95, -1.9], "param")
    with pytest.raises(AssertionError):
        check_close(np.array([]), 0.001, "the rates")


def _support_cells_run_as(name: str) -> dict:
    """A namespace in which the support cells ran as module `name` (the kernel's "__main__")."""
    from tinytorch.core import optimizers

    namespace = {"__name__": name, **{k: v for k, v in vars(optimizers).items() if k[0] != "_"}}
    for cell in read_source(SOURCE).cells:
        if is_test_support_cell(cell):
            exec(cell.source, namespace)
    return namespace


def step_lr(base_lr, epoch, step_size, gamma):  # one epoch early: a known mistake
    return base_lr * gamma ** ((epoch + 1) // step_size)


PROBE = "def probe(f):\n    return [answer(lambda: f(0.1, e, 3, 0.5)) for e in (0, 2, 5)]"
NAMED = " Your step_lr behaves like a known mistake: one epoch early."


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """The support cells as the student's kernel runs them, in a folder whose mistakes.json
    catalogues the step_lr above."""
    kernel = _support_cells_run_as("__main__")
    early = kernel["fingerprint"]([step_lr(0.1, e, 3, 0.5) for e in (0, 2, 5)])
    wrong = {"mistake": "one epoch early", "fingerprint": early}
    catalogue = {"functions": {"step_lr": {"probe": PROBE, "mistakes": [wrong]}}}
    (tmp_path / "mistakes.json").write_text(json.dumps(catalogue), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return kernel


def test_known_mistake_names_a_catalogued_wrong_version_where_its_fingerprints_are(kernel):
    """In the student's kernel (__main__) a function is named by the fingerprints beside the
    notebook; without them, or in the grader's judge (another __name__), nothing is named."""
    assert kernel["known_mistake"](step_lr) == NAMED
    assert kernel["known_mistake"](kernel["step_lr"]) == ""  # the reference
    assert kernel["known_mistake"](None) == ""
    assert _support_cells_run_as("__reference__")["known_mistake"](step_lr) == ""
    Path("mistakes.json").unlink()
    assert kernel["known_mistake"](step_lr) == ""


def test_a_failing_check_ends_with_the_known_mistake(kernel):
    with pytest.raises(AssertionError) as e:
        kernel["check_close"](step_lr(0.1, 2, 3, 0.5), 0.1, "the rate", of=step_lr)
    assert str(e.value).endswith(NAMED)
    with pytest.raises(AssertionError) as e:
        kernel["check_trajectory"]("StepLR", [0.05], [0.1], of=step_lr)
    assert str(e.value).endswith(NAMED)


def test_check_trajectory_names_the_first_step_and_element_off_and_counts_nan_as_off(support):
    check_trajectory = support["check_trajectory"]
    theirs = [[1.0, 2.0], [3.0, 4.0]]
    check_trajectory("SGD", np.array(theirs) + 1e-13, theirs)
    with pytest.raises(
        AssertionError,
        match=r"^SGD leaves PyTorch's trajectory at step 2, element 1: nan instead of 4.0",
    ):
        check_trajectory("SGD", [[1.0, 2.0], [3.0, np.nan]], theirs)
    with pytest.raises(
        AssertionError,
        match=r"^StepLR leaves PyTorch's rates at epoch 0: 0.2 instead of 0.1 \(off by 0.1\)",
    ):
        check_trajectory("StepLR", [0.2, 0.1], [0.1, 0.1], what="rates", unit="epoch", first=0)
    with pytest.raises(AssertionError, match="values of shape"):
        check_trajectory("SGD", [[1.0, 2.0]], theirs)


def test_the_helpers_drive_the_package_as_the_graded_cells_expect(support):
    param, state = support["sgd_steps"]([[1.0, 1.0, 1.0], [0.5, 0.5, 0.5]], momentum=0.9)
    assert (
        param.tolist() == pytest.approx([0.76, -2.24, 0.26])
        and state["momentum_buffer"].tolist() == [1.4] * 3
    )
    assert support["trajectory"](support["SGD"], 2, lr=0.1).shape == (2, 3)
    assert support["scheduler_rates"](
        lambda opt: support["StepLR"](opt, step_size=2, gamma=0.5), 5
    ) == [0.1, 0.1, 0.05, 0.05, 0.025]
