"""Reading a submission and recording an outcome, decided without any job: the cases a batch
would only carry along (an older notebook format, an outcome path taken by a folder, a test cell
tampered with)."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from tests import submissions as sub
from tests.conftest import make_course_copy
from tests.grading.batch_checks import notebooks
from tito.course.examples import with_mistake
from tito.course.generate import generate
from tito.course.grading.display import for_display, without_hidden_tests
from tito.course.grading.host import prepare, read_submission, record
from tito.course.grading.outcome import Outcome
from tito.course.notebooks import dumps
from tito.course.settings import Course


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course of this file's own: what these tests record stays out of the batches' gradebook."""
    course = Course(make_course_copy(tmp_path_factory.mktemp("record")))
    generate(course, course.module("06"))
    return course


@pytest.mark.slow  # the graded course: nbgrader generates the student version
def test_a_notebook_from_an_older_nbformat_minor_version_is_read_and_prepared_like_any(
    course,
):
    m, release, instructor, complete = notebooks(course)
    old = nbformat.from_dict(json.loads(nbformat.writes(complete)))
    old.nbformat_minor = 4
    for c in old.cells:
        c.pop("id", None)
    path = course.submission_notebook(m, "old_minor_version")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old), encoding="utf-8")
    submitted, received = read_submission(course, course.root, m, "old_minor_version", instructor)
    assert len(received) == 64 and [c.source for c in submitted.cells] == [
        c.source for c in complete.cells
    ]
    prepared, notes = prepare(course, course.root, m, "old_minor_version", submitted, instructor)
    grade_ids = [
        c.metadata["nbgrader"]["grade_id"] for c in prepared.cells if "nbgrader" in c.metadata
    ]
    assert notes == [] and grade_ids == [
        c.metadata["nbgrader"]["grade_id"] for c in complete.cells if "nbgrader" in c.metadata
    ]


@pytest.mark.slow
def test_an_outcome_path_that_is_a_folder_is_moved_aside_not_deleted(course):
    m = course.module("06")
    out = course.student_folder("autograded", m, "outcome_folder")
    (out / "grading.json" / "kept.txt").mkdir(parents=True)
    record(course, course.root, m, Outcome("outcome_folder", m.name, "invalid", "not a notebook"))
    assert json.loads((out / "grading.json").read_text())["status"] == "invalid"
    assert [p.name for p in out.glob("grading.json.folder-*/kept.txt")] == ["kept.txt"]


def _outcome(course, student: str, status: str, score: float | None):
    """An outcome of `status` with every graded cell at `score` (None: a failed one's)."""
    from tito.course.grading.outcome import CellScore

    m, _, instructor, _ = notebooks(course)
    cells = [
        CellScore(
            c.metadata["nbgrader"]["grade_id"],
            float(c.metadata["nbgrader"]["points"]),
            c.metadata["nbgrader"]["points"] if score == "full" else score,
            None,
            None,
        )
        for c in instructor.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    ]
    return m, Outcome(student, m.name, status, "why" if status != "graded" else "", cells)


@pytest.mark.slow
def test_a_failed_outcome_leaves_no_score_in_the_gradebook_and_the_export_refuses(
    course, monkeypatch
):
    """Graded in full first, then failed: the record holds no automatic score (not 0, not the
    earlier one), every cell waits, the report says so, and the export exits 3 naming the
    student unless --allow-incomplete, which marks the row and leaves its score empty."""
    import csv
    import io

    from nbgrader.api import Gradebook
    from typer.testing import CliRunner

    from tito.main import app

    for student, status, score in [
        ("ok", "graded", "full"),
        ("odd", "invalid", 0.0),
        ("unlucky", "graded", "full"),
        ("unlucky", "failed", None),
    ]:
        m, outcome = _outcome(course, student, status, score)
        handed_in = course.submission_notebook(m, student)
        handed_in.parent.mkdir(parents=True, exist_ok=True)
        handed_in.write_text("{}", encoding="utf-8")
        record(course, course.root, m, outcome)
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", course.course_id) as gb:
        grades = gb.find_submission_notebook(m.notebook, m.name, "unlucky").grades
        assert {(g.auto_score, g.needs_manual_grade) for g in grades} == {(None, True)}
        assert len(grades) == 49  # 45 tests and 4 written answers
    monkeypatch.chdir(course.root)
    runner = CliRunner()
    report = runner.invoke(app, ["nbgrader", "report", "06", "--format", "csv"])
    rows = {r["student"]: r for r in csv.DictReader(io.StringIO(report.output))}
    assert (rows["unlucky"]["status"], rows["unlucky"]["total"]) == ("failed", "")
    assert (rows["ok"]["status"], rows["ok"]["total"], rows["odd"]["total"]) == (
        "graded",
        "92.0",
        "0.0",
    )
    refused = runner.invoke(app, ["nbgrader", "export", "06", "--to", "grades.csv"])
    assert refused.exit_code == 3, refused.output
    assert "unlucky (06_optimizers: failed)" in " ".join(refused.output.split())
    assert not (course.root / "grades.csv").exists()
    marked = runner.invoke(
        app, ["nbgrader", "export", "06", "--to", "grades.csv", "--allow-incomplete"]
    )
    assert marked.exit_code == 0, marked.output
    lines = (course.root / "grades.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == (
        '"student_id","06_optimizers","06_optimizers max","06_optimizers pending",'
        '"06_optimizers status"'
    )
    assert '"unlucky","",100.0,49,"failed"' in lines, lines
    assert '"ok",92.0,100.0,0,"graded"' in lines and '"odd",0.0,100.0,0,"invalid"' in lines


ODD_METADATA = {
    "points": ("abc", "has nbgrader metadata nbgrader cannot read ('abc' is not of type 'number')"),
    "grade": ("yes", "has nbgrader metadata nbgrader cannot read ('yes' is not of type 'boolean')"),
    "schema_version": (
        99,
        "has nbgrader metadata nbgrader cannot read (Schema version is too new: 99 (expected 3))",
    ),
    "grade_id": (
        "gd_step_valuez",
        "is marked as the module's cell 'gd_step_valuez', which the module does not have",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("key", ODD_METADATA)
def test_odd_nbgrader_metadata_makes_the_submission_invalid_naming_the_cell(course, key):
    """Metadata nbgrader's own steps crash on (it did for points and grade) is the student's to
    fix, never the machine's failure."""
    m, _, instructor, complete = notebooks(course)
    nb = nbformat.from_dict(json.loads(nbformat.writes(complete)))
    index, cell = next(
        (i, c)
        for i, c in enumerate(nb.cells)
        if c.metadata.get("nbgrader", {}).get("grade_id") == "gd_step_values"
    )
    value, problem = ODD_METADATA[key]
    cell.metadata["nbgrader"][key] = value
    path = course.submission_notebook(m, f"odd_{key}")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(nb), encoding="utf-8")
    outcome = read_submission(course, course.root, m, f"odd_{key}", instructor)
    assert (outcome.status, outcome.reason) == (
        "invalid",
        f"cell {index} (gd_step_values) {problem}: start again from the student version, "
        "or copy your answers into it",
    )
    assert outcome.score == 0.0


@pytest.mark.slow
def test_a_deleted_cell_nbgrader_cannot_put_back_makes_the_submission_invalid(course):
    """nbgrader places a restored test cell after the cell before it, and fails when that one is
    only locked (sgd_class): the notebook lost the cell, so the outcome is invalid, not failed."""
    m, _, instructor, complete = notebooks(course)
    nb = nbformat.from_dict(json.loads(nbformat.writes(complete)))
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    after_locked = next(g for g in ids[ids.index("sgd_class") + 1 :] if g)  # sgd_plain_step_values
    nb.cells = [c for c, g in zip(nb.cells, ids) if g != after_locked]
    path = course.submission_notebook(m, "lost_cell")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(nb), encoding="utf-8")
    submitted, _ = read_submission(course, course.root, m, "lost_cell", instructor)
    outcome = prepare(course, course.root, m, "lost_cell", submitted, instructor)
    assert (outcome.status, outcome.score) == ("invalid", 0.0)
    assert outcome.reason == (
        f"the notebook lost 1 of the module's cells ({after_locked}) and nbgrader cannot put them "
        "back (KeyError: 'sgd_class'): start again from the student version, or copy your "
        "answers into it"
    )


def _job_input(course, student: str, nb) -> tuple[dict, list[tuple], list[str]]:
    """For submission `nb`: the notebook a grading job gets (prepared, hidden tests left out, as
    JSON data), the cells of the copy the kernel run's outputs are merged into (type and id: a
    run whose cells differ has its outputs dropped, host.merge_outputs) and the notes preparing
    it made."""
    m, _, instructor, _ = notebooks(course)
    path = course.submission_notebook(m, student)
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    submitted, _ = read_submission(course, course.root, m, student, instructor)
    prepared, notes = prepare(course, course.root, m, student, submitted, instructor)
    job = json.loads(dumps(without_hidden_tests(prepared)))
    for c in job["cells"]:  # written as a list of lines
        c["source"] = "".join(c["source"])
    shown = for_display(prepared, instructor, course.display_limits)
    return job, [(c.cell_type, c.get("id")) for c in shown.cells], notes


TAMPERED = "adam_eps_outside_sqrt"  # a test cell the bug fails


@pytest.mark.slow
@pytest.mark.parametrize("tampering", ["deleted", "duplicated", "edited"])
def test_tampering_with_a_test_cell_gives_the_job_the_same_notebook_as_the_bug_alone(
    course, tampering
):
    """A bug with one of its failing test cells deleted, duplicated (the copy passes) or edited to
    pass: nbgrader's steps give the job the notebook of the bug alone, but for a deleted cell,
    which is put back with nbgrader's note as its first line. The kernel run runs every cell of
    it (the put-back one too, whose result is merged like any: same cells as the display copy)
    and the judge runs the instructor's test cells whatever the submission holds: the tampering
    rescues nothing."""
    m, _, _, complete = notebooks(course)
    buggy = with_mistake(complete, m, "adam-eps-inside-sqrt")
    tampered = {
        "deleted": sub.without_cell(buggy, TAMPERED),
        "duplicated": sub.with_duplicate(buggy, TAMPERED, '"""forged"""\npass'),
        "edited": sub.set_source(buggy, TAMPERED, '"""adam eps"""\npass'),
    }[tampering]
    alone, _, _ = _job_input(course, f"bug_alone_{tampering}", buggy)
    job, shown, notes = _job_input(course, f"tampered_{tampering}", tampered)
    assert [(c["cell_type"], c.get("id")) for c in job["cells"]] == shown
    assert len(job["cells"]) == len(alone["cells"]) == len(shown)
    if tampering == "deleted":
        i = next(
            i
            for i, c in enumerate(job["cells"])
            if c["metadata"].get("nbgrader", {}).get("grade_id") == TAMPERED
        )
        restored, job["cells"][i] = job["cells"][i], alone["cells"][i]
        note, code = restored["source"].split("\n", 1)
        assert note == (
            f"# This cell (id:{TAMPERED}) was missing from the submission. It was added back by "
            "nbgrader."
        )
        assert (restored["cell_type"], code) == ("code", "\n" + alone["cells"][i]["source"])
        assert isinstance(restored.get("id"), str) and restored["id"]
    assert job == alone  # every other cell, and the notebook's metadata (its kernel)
    assert notes == (
        [f"duplicated cell {TAMPERED!r}: one copy graded"] if tampering == "duplicated" else []
    )


NOT_USED = "timestamp.txt not used ("


@pytest.mark.slow
@pytest.mark.parametrize(
    "student, timestamp, at, note",
    [
        ("on_time", "2026-12-01 09:30:00.000000 UTC", "2026-12-01 09:30:00", ""),
        ("with_offset", "2026-12-01T10:30:00+01:00", "2026-12-01 09:30:00", ""),
        ("garbled", "the day before", None, f"{NOT_USED}Invalid isoformat string: 'the day"),
        ("out_of_range", "9999-12-31T23:59:59-23:00", None, f"{NOT_USED}date value out of range)"),
        ("names_a_file", "2026-12-01 09:30:00 /proc/kmsg", None, f"{NOT_USED}Invalid isoformat"),
        ("another_zone", "2026-12-01 10:30:00.000000 CET", None, f"{NOT_USED}Invalid isoformat"),
        ("named_pipe", os.mkfifo, None, f"{NOT_USED}not a regular file: a named pipe)"),
    ],
)
def test_the_submission_time_comes_from_a_readable_timestamp_file_and_a_bad_one_is_a_note(
    course, student, timestamp, at, note
):
    """nbgrader's timestamp.txt, the student's file: a valid time is recorded (in UTC); a garbled
    one, one out of range, one naming a time zone file (which nbgrader's lenient parser would
    open), one in another zone by name, or a named pipe (which its reading would wait on for
    ever) is noted, and the submission prepared all the same, without a time."""
    from tito.course.nbgrader_setup import gradebook

    m, _, instructor, complete = notebooks(course)
    path = course.submission_notebook(m, student)
    path.parent.mkdir(parents=True)
    nbformat.write(complete, path)
    if callable(timestamp):
        timestamp(path.parent / "timestamp.txt")
    else:
        (path.parent / "timestamp.txt").write_text(timestamp)
    submitted, _ = read_submission(course, course.root, m, student, instructor)
    prepared, notes = prepare(course, course.root, m, student, submitted, instructor)
    assert len(prepared.cells) == len(complete.cells)
    assert [n[: len(note)] for n in notes] == ([note] if note else [])
    with gradebook(course, course.root) as gb:
        recorded = gb.find_submission(m.name, student).timestamp
    assert (str(recorded) if recorded else None) == at


def _flags_off(cell: dict) -> None:
    cell["metadata"]["nbgrader"].update(grade=False, locked=False)


def _made_raw(cell: dict) -> None:
    cell["cell_type"] = "raw"
    del cell["outputs"], cell["execution_count"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, problem",
    [
        (
            _flags_off,
            "changes the grade of the module's cell 'sgd_plain_step_values' (False "
            "instead of True)",
        ),
        (_made_raw, "is the module's code cell 'sgd_plain_step_values' made a raw cell"),
    ],
)
def test_a_module_cell_with_its_flags_or_its_type_changed_is_invalid_naming_it(
    course, change, problem
):
    """All flags off, or the cell made a raw one: nbgrader's checksums or its restoring of
    cells would stop on it (the submission was failed on every grade)."""
    m, _, instructor, complete = notebooks(course)
    nb = json.loads(nbformat.writes(complete))
    index, cell = next(
        (i, c)
        for i, c in enumerate(nb["cells"])
        if c["metadata"].get("nbgrader", {}).get("grade_id") == "sgd_plain_step_values"
    )
    change(cell)
    path = course.submission_notebook(m, change.__name__)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(nb), encoding="utf-8")
    outcome = read_submission(course, course.root, m, change.__name__, instructor)
    assert (outcome.status, outcome.reason) == (
        "invalid",
        f"cell {index} (sgd_plain_step_values) {problem}: start again from the student "
        "version, or copy your answers into it",
    )
