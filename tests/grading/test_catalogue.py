"""The student-bug catalogue and the correct alternatives, graded as the grader grades them.

modules/06_optimizers/mistakes.yaml lists realistic wrong answers and alternatives.yaml correct
answers written differently from the reference. Each entry becomes a submission: the student
version with the reference solution filled in and the entry's region(s) replaced. Every bug
must fail a cell named for it in the judge (whose verdict is what costs the points: the kernel
run can only lower a score). Every alternative must score full marks through the whole
pipeline (jailed kernel run and judge, where either could refuse it); alternatives that touch
different regions share a submission, whose failure names them all. The untouched
student version must score 0. One submission holding a bug in each part of the module also
goes through the whole pipeline, to check that judged failures cost their points. The fast
tests at the top check the catalogue files themselves.
"""
from __future__ import annotations

import ast
import html
import re
import tempfile
import time
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import pytest
import yaml

from tito.course.grading import submissions as sub
from tito.course.grading.host import autograde, student_package
from tito.course.grading.jail import Jail, Limits
from tito.course.grading.judge import judge
from tito.course.grading import feedback
from tito.course.notebooks import SOLUTION_BEGIN
from tito.course.settings import Course

from tests.conftest import report_summary

CATALOGUE = Path(__file__).parent / "catalogue"
BUGS = yaml.safe_load(Course().module("06").mistakes.read_text(encoding="utf-8"))["mistakes"]
ALTERNATIVES = yaml.safe_load((CATALOGUE / "alternatives.yaml").read_text(encoding="utf-8"))
BUG_IDS = [b["id"] for b in BUGS]
ALTERNATIVE_IDS = [a["id"] for a in ALTERNATIVES]
UNTOUCHED = "catalogue-untouched"
# The bug whose message the feedback test looks for in the HTML a student receives.
FEEDBACK_BUG = "adam-step-from-zero"
# Bugs that also go through the whole pipeline, together in one submission (one per part of the module).
PIPELINE_BUGS = [FEEDBACK_BUG, "sgd-nesterov-old-buffer", "clip-per-tensor", "step-lr-one-epoch-early"]
PIPELINE_BUGS_STUDENT = "pipeline-bugs"


def bug_submission(complete, bug):
    return sub.replace_region(complete, bug["region"], bug["code"], bug.get("index", 0))


def alternative_submission(complete, *alternatives):
    nb = complete
    for alternative in alternatives:
        for grade_id, code in alternative["replace"].items():
            nb = sub.replace_region(nb, grade_id, code)
    return nb


def packed(alternatives) -> list[list]:
    """The alternatives in as few groups as possible such that no two in a group touch the same region."""
    groups: list[list] = []
    for alternative in alternatives:
        group = next((g for g in groups if not any(set(a["replace"]) & set(alternative["replace"]) for a in g)), None)
        if group is None:
            groups.append(group := [])
        group.append(alternative)
    return groups


# Submissions that do no work: every solution region written as one of these must earn 0
# points. Each maps the region's function (its ast node) to the body written for it.
CONSTANT_STEP = {  # parameters move by a constant, Adam counts its steps, rates stay put
    "gradient_descent_step": "if param.grad is None:\n    return\nparam.data -= 0.01",
    "sgd_step": "param -= 0.01", "adam_step": 'state["step"] += 1\nparam -= 0.01',
    "adamw_step": 'state["step"] += 1\nparam -= 0.01', "clip_grad_norm": "return 1.0",
    "step_lr": "return base_lr", "exponential_lr": "return base_lr", "cosine_annealing_lr": "return base_lr",
    "warmup_cosine_lr": "return base_lr",
}
EMPTY = "np.empty((0, 1))"
EMPTY_ARRAYS = {  # empty arrays wherever an array or a number is expected (an empty comparison passes)
    "gradient_descent_step": f"param.data = {EMPTY}\nparam.grad = {EMPTY}",
    "sgd_step": f'state["momentum_buffer"] = {EMPTY}',
    "adam_step": f'state["step"] += 1\nstate["exp_avg"] = state["exp_avg_sq"] = {EMPTY}',
    "adamw_step": f'state["step"] += 1\nstate["exp_avg"] = state["exp_avg_sq"] = {EMPTY}',
    "clip_grad_norm": f"for p in ([params] if isinstance(params, Tensor) else params):\n    p.grad = {EMPTY}\n"
                      f"return {EMPTY}",
    **{name: f"return {EMPTY}" for name in ("step_lr", "exponential_lr", "cosine_annealing_lr", "warmup_cosine_lr")},
}
NO_WORK = {"pass": lambda function: "pass", "returns-none": lambda function: "return None",
           "returns-its-input": lambda function: f"return {function.args.args[0].arg}",
           "constant-step": lambda function: CONSTANT_STEP[function.name],
           "empty-arrays": lambda function: EMPTY_ARRAYS[function.name]}


def no_work_submission(complete, kind: str):
    """Every solution region of `complete` replaced by the body that `NO_WORK[kind]` writes."""
    nb = complete
    for cell in complete.cells:
        md = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not md.get("solution"):
            continue
        tree = ast.parse(cell.source)
        lines = cell.source.split("\n")
        marks = [i + 1 for i, line in enumerate(lines) if line.strip() == SOLUTION_BEGIN]
        for index, mark in enumerate(marks):
            function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.lineno < mark <= n.end_lineno)
            nb = sub.replace_region(nb, md["grade_id"], NO_WORK[kind](function), index)
    return nb


ALTERNATIVE_GROUPS = {f"alternatives-{i + 1}": group for i, group in enumerate(packed(ALTERNATIVES))}
GROUP_OF = {a["id"]: student for student, group in ALTERNATIVE_GROUPS.items() for a in group}


def _cells(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


# --- the catalogue files ------------------------------------------------------------------

@pytest.fixture(scope="module")
def instructor():
    course = Course(Path(__file__).parent)
    return nbformat.read(course.source_notebook(course.module("06")), as_version=4)


def _solution_cells(nb) -> set[str]:
    return {gid for gid, c in _cells(nb).items() if c.cell_type == "code" and c.metadata["nbgrader"].get("solution")}


def _grade_cells(nb) -> set[str]:
    return {gid for gid, c in _cells(nb).items() if c.cell_type == "code" and c.metadata["nbgrader"].get("grade")}


def test_catalogue_entries_have_exactly_the_documented_fields():
    id_format = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
    for bug in BUGS:
        assert {"id", "mistake", "region", "caught_by", "code"} <= set(bug) <= \
            {"id", "mistake", "region", "index", "caught_by", "message", "code"}, f"bug entry {bug.get('id')}: fields {sorted(bug)}"
        assert isinstance(bug["caught_by"], list) and bug["caught_by"], f"bug {bug['id']}: caught_by must be a non-empty list"
    for alternative in ALTERNATIVES:
        assert set(alternative) == {"id", "why", "replace"}, f"alternative {alternative.get('id')}: fields {sorted(alternative)}"
        assert isinstance(alternative["replace"], dict) and alternative["replace"], f"alternative {alternative['id']}: empty replace"
    for entry in BUGS + ALTERNATIVES:
        assert id_format.fullmatch(entry["id"]), f"id {entry['id']!r} is not lower-case words joined by '-'"


def test_catalogue_ids_are_unique():
    assert len(set(BUG_IDS)) == len(BUG_IDS), sorted(i for i in BUG_IDS if BUG_IDS.count(i) > 1)
    assert len(set(ALTERNATIVE_IDS)) == len(ALTERNATIVE_IDS), sorted(i for i in ALTERNATIVE_IDS if ALTERNATIVE_IDS.count(i) > 1)


def test_catalogue_is_large_enough_and_covers_every_student_region(instructor):
    assert len(BUGS) >= 30 and len(ALTERNATIVES) >= 8, f"{len(BUGS)} bugs, {len(ALTERNATIVES)} alternatives"
    assert sum("message" in b for b in BUGS) >= 8, "at least 8 bugs must check their diagnostic message"
    assert {b["region"] for b in BUGS} == _solution_cells(instructor)


@pytest.mark.parametrize("bug", BUGS, ids=BUG_IDS)
def test_bug_names_existing_cells_and_compiles(instructor, bug):
    assert bug["region"] in _solution_cells(instructor), f"{bug['region']} is not a solution cell"
    assert set(bug["caught_by"]) <= _grade_cells(instructor), f"unknown grade cells {set(bug['caught_by']) - _grade_cells(instructor)}"
    nb = bug_submission(instructor, bug)
    cell = _cells(nb)[bug["region"]]
    compile(cell.source, f"<bug {bug['id']}>", "exec")
    original = sub.region(instructor, bug["region"], bug.get("index", 0))
    assert sub.region(nb, bug["region"], bug.get("index", 0)).split() != original.split(), "the code is the reference solution"


@pytest.mark.parametrize("alternative", ALTERNATIVES, ids=ALTERNATIVE_IDS)
def test_alternative_names_existing_cells_and_compiles(instructor, alternative):
    assert set(alternative["replace"]) <= _solution_cells(instructor), \
        f"not solution cells: {set(alternative['replace']) - _solution_cells(instructor)}"
    nb = alternative_submission(instructor, alternative)
    for grade_id in alternative["replace"]:
        compile(_cells(nb)[grade_id].source, f"<alternative {alternative['id']} {grade_id}>", "exec")


# --- the whole catalogue through the real pipeline -----------------------------------------

def _caught(outcome, bug) -> list:
    """The named cells in which the judge failed the bug (and, through the pipeline, points were lost)."""
    return [c for c in outcome.cells if c.grade_id in bug["caught_by"] and c.judge is False and c.score < c.max_score]


def _full_marks(outcome) -> bool:
    return outcome.status == "graded" and all(c.score == c.max_score for c in outcome.cells)


class Judged:
    """The judge's verdicts for one submission, shaped like an Outcome's cells."""

    def __init__(self, report):
        self.status = "graded"
        self.cells = [_JudgedCell(v.grade_id, v.points, v.passed, v.message) for v in report.verdicts]
        self.diagnosis = report.diagnosis


class _JudgedCell:
    def __init__(self, grade_id, points, passed, message):
        self.grade_id, self.max_score, self.judge, self.message = grade_id, points, passed, message
        self.score = points if passed else 0.0


def _judge_one(course_root: str, notebook: str, only: list[str] | None, tests_as_released: bool = False) -> Judged:
    """One submission through the judge alone, in a jail of its own (in a worker process: the
    judge's trusted side, like tinytorch's grad mode, is per process, as in a grading job).

    With `only`, the judge runs just those graded cells (each cell is judged on its own, so
    leaving the others out changes no verdict). With `tests_as_released`, the graded cells are
    the student version's: no hidden tests."""
    course = Course(Path(course_root))
    reference = nbformat.read(course.source_notebook(course.module("06")), as_version=4)
    if tests_as_released:
        released = _cells(nbformat.read(course.release_notebook(course.module("06")), as_version=4))
        for c in reference.cells:
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade") \
                    and not c.metadata["nbgrader"].get("solution"):
                c.source = released[c.metadata["nbgrader"]["grade_id"]].source
    if only is not None:
        reference.cells = [c for c in reference.cells if not (c.cell_type == "code" and c.metadata.get(
            "nbgrader", {}).get("grade")) or c.metadata["nbgrader"]["grade_id"] in only]
    with tempfile.TemporaryDirectory() as d:
        # At the course's own time limit per cell (settings.ini, 60 s): the course copy's 15 s is
        # for the pipeline's runaway cases, and a 200-step training cell needs more on a busy machine.
        jail = Jail(Limits(**{**course.grading_limits, "cell_timeout_seconds": Course().cell_timeout}), Path(d))
        jail.add_package(student_package(course))
        try:
            return Judged(judge(reference, nbformat.reads(notebook, as_version=4), jail,
                                tensor_class=course.tensor_class,
                                mistakes=course.module("06").mistakes.read_text(encoding="utf-8")))
        finally:
            jail.close()


def in_processes(fn, course, submissions: dict, *per_submission: list, workers: int = 2) -> dict:
    """Student -> fn(course root, the submission as JSON, *its values in per_submission), in
    `workers` fresh processes."""
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return dict(zip(submissions, pool.map(fn, [str(course.root)] * len(submissions),
                                              [nbformat.writes(nb) for nb in submissions.values()], *per_submission)))


def judge_all(course, submissions: dict, only: dict, tests_as_released: bool = False, workers: int = 2) -> dict:
    """Judge each submission; `only[student]`, where given, names the cells to run."""
    return in_processes(_judge_one, course, submissions, [only.get(student) for student in submissions],
                        [tests_as_released] * len(submissions), workers=workers)


def release_and_complete(course) -> tuple:
    """Module 06, its student version, and the student version filled with the reference solution."""
    m = course.module("06")
    release = nbformat.read(course.release_notebook(m), as_version=4)
    return m, release, sub.filled(release, nbformat.read(course.source_notebook(m), as_version=4))


@pytest.fixture(scope="module")
def batch(graded_course, request):
    course = graded_course
    m, release, complete = release_and_complete(course)
    bugs = {f"bug-{b['id']}": bug_submission(complete, b) for b in BUGS}
    several_bugs = complete
    for bug_id in PIPELINE_BUGS:
        several_bugs = bug_submission(several_bugs, next(b for b in BUGS if b["id"] == bug_id))
    judged = {**bugs, f"judged-{PIPELINE_BUGS_STUDENT}": several_bugs,
              **{f"no-work-{kind}": no_work_submission(complete, kind) for kind in NO_WORK}}
    pipeline = {UNTOUCHED: release, PIPELINE_BUGS_STUDENT: several_bugs,
                **{student: alternative_submission(complete, *group) for student, group in ALTERNATIVE_GROUPS.items()}}
    for student, nb in pipeline.items():
        path = course.root / "submitted" / student / m.name / f"{m.notebook}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)

    start = time.monotonic()
    outcomes = {o.student: o for o in autograde(course, m, list(pipeline), workers=2)}
    # A bug's verdict is whether a cell named for it fails, so only those cells run for it.
    outcomes.update(judge_all(course, judged, only={f"bug-{b['id']}": b["caught_by"] for b in BUGS}))
    seconds = time.monotonic() - start

    caught = sum(bool(_caught(outcomes[f"bug-{b['id']}"], b)) for b in BUGS)
    named = sum(_named(outcomes[f"bug-{b['id']}"], b) for b in BUGS)
    accepted = sum(_full_marks(outcomes[GROUP_OF[a["id"]]]) for a in ALTERNATIVES)
    zero = sum(_points(outcomes[f"no-work-{kind}"]) == 0.0 for kind in NO_WORK)
    line = (f"{caught}/{len(BUGS)} bugs caught, {named}/{len(BUGS)} named by the diagnosis, "
            f"{accepted}/{len(ALTERNATIVES)} alternatives accepted, "
            f"{zero}/{len(NO_WORK)} no-work submissions at 0, "
            f"untouched student version {outcomes[UNTOUCHED].score:g}/{outcomes[UNTOUCHED].max_score:g}; "
            f"{len(pipeline)} submissions through the pipeline and {len(judged)} through the judge "
            f"in {seconds:.0f} s")
    report_summary(request.config, "student-bug catalogue (06_optimizers)", line)
    return dict(course=course, module=m, outcomes=outcomes)


def _points(outcome) -> float:
    return sum(c.score for c in outcome.cells)


def _named(outcome, bug) -> bool:
    """The diagnosis names the bug in its own region, and nothing anywhere else."""
    return list(outcome.diagnosis) == [bug["region"]] and bug["id"] in outcome.diagnosis[bug["region"]]


@pytest.mark.slow
@pytest.mark.parametrize("bug", BUGS, ids=[b["id"] for b in BUGS])
def test_the_diagnosis_names_the_bug_in_its_region_and_nothing_else(batch, bug):
    diagnosis = batch["outcomes"][f"bug-{bug['id']}"].diagnosis
    assert _named(batch["outcomes"][f"bug-{bug['id']}"], bug), diagnosis
    # Named with another only when the two give the same numbers on every probe.
    assert len(diagnosis[bug["region"]]) == 1 or sorted(diagnosis[bug["region"]]) in (
        ["sgd-buffer-starts-at-zero", "sgd-dampening-on-first-step"],
        ["adam-bias-correction-t-minus-one", "adam-step-from-zero"])


@pytest.mark.slow
def test_the_pipeline_records_the_diagnosis_of_a_submission_with_several_bugs(batch):
    outcome = batch["outcomes"][PIPELINE_BUGS_STUDENT]
    bugs = [next(b for b in BUGS if b["id"] == bug_id) for bug_id in PIPELINE_BUGS]
    assert sorted(outcome.diagnosis) == sorted(b["region"] for b in bugs)
    assert all(b["id"] in outcome.diagnosis[b["region"]] for b in bugs), outcome.diagnosis


def test_the_diagnosis_names_nothing_for_the_alternatives_or_the_reference():
    """Trusted, without a jail: every alternative (and the reference) behaves like the reference."""
    from tito.course.grading import diagnosis
    from tito.course.notebooks import is_export_cell

    course = Course()
    m = course.module("06")
    reference = nbformat.read(course.source_notebook(m), as_version=4)
    catalogue = diagnosis.load(m.mistakes.read_text(encoding="utf-8"))
    names = diagnosis.region_functions(reference)
    for alternative in [{"id": "reference", "replace": {}}, *ALTERNATIVES]:
        nb = reference
        for grade_id, code in alternative["replace"].items():
            nb = sub.replace_region(nb, grade_id, code)
        namespace: dict = {}
        for cell in nb.cells:
            if is_export_cell(cell):
                exec(cell.source, namespace)
        found = diagnosis.diagnose(reference, catalogue, {n: namespace[n] for n in names.values()})
        assert found == {}, (alternative["id"], found)


@pytest.mark.slow
@pytest.mark.parametrize("kind", NO_WORK)
def test_a_submission_that_does_no_work_earns_nothing(batch, kind):
    o = batch["outcomes"][f"no-work-{kind}"]
    assert [c.grade_id for c in o.cells if c.score] == [], f"every solution region written as {kind}"


@pytest.mark.slow
def test_untouched_student_version_scores_zero(batch):
    o = batch["outcomes"][UNTOUCHED]
    assert (o.status, o.score) == ("graded", 0.0), (o.status, o.reason, [(c.grade_id, c.score) for c in o.cells if c.score])


@pytest.mark.slow
@pytest.mark.parametrize("bug", BUGS, ids=BUG_IDS)
def test_bug_loses_points_in_a_named_cell(batch, bug):
    o = batch["outcomes"][f"bug-{bug['id']}"]
    assert o.status == "graded", f"{o.status}: {o.reason}"
    lost = [c.grade_id for c in o.cells if c.score < c.max_score]
    assert _caught(o, bug), f"{bug['mistake']}: no points lost in {bug['caught_by']} (lost in {lost})"


@pytest.mark.slow
@pytest.mark.parametrize("bug", [b for b in BUGS if "message" in b], ids=[b["id"] for b in BUGS if "message" in b])
def test_failure_message_names_the_bug(batch, bug):
    messages = [c.message for c in _caught(batch["outcomes"][f"bug-{bug['id']}"], bug)]
    assert any(bug["message"] in m for m in messages), f"{bug['message']!r} not in {messages}"


@pytest.mark.slow
def test_bugs_the_judge_fails_cost_their_points_through_the_pipeline(batch):
    judged, graded = batch["outcomes"][f"judged-{PIPELINE_BUGS_STUDENT}"], batch["outcomes"][PIPELINE_BUGS_STUDENT]
    assert graded.status == "graded", graded.reason
    assert [(c.grade_id, c.judge) for c in graded.cells] == [(c.grade_id, c.judge) for c in judged.cells]
    lost = {c.grade_id for c in graded.cells if c.score == 0.0 < c.max_score}
    for bug_id in PIPELINE_BUGS:
        bug = next(b for b in BUGS if b["id"] == bug_id)
        assert _caught(judged, bug), f"{bug_id}: not failed in {bug['caught_by']} next to the other bugs"
        assert lost >= {c.grade_id for c in _caught(judged, bug)}, bug_id


@pytest.mark.slow
@pytest.mark.parametrize("alternative", ALTERNATIVES, ids=ALTERNATIVE_IDS)
def test_alternative_scores_full_marks(batch, alternative):
    student = GROUP_OF[alternative["id"]]
    graded, together = batch["outcomes"][student], [a["id"] for a in ALTERNATIVE_GROUPS[student]]
    assert graded.status == "graded", f"{student} ({together}): {graded.status}: {graded.reason}"
    assert [(c.grade_id, c.message) for c in graded.cells if c.score < c.max_score] == [], f"{student}: {together}"
    assert graded.score == graded.max_score


@pytest.mark.slow
def test_feedback_html_shows_the_diagnostic_message(batch):
    course, m = batch["course"], batch["module"]
    bug = next(b for b in BUGS if b["id"] == FEEDBACK_BUG)
    student = PIPELINE_BUGS_STUDENT
    (path,) = feedback.generate(course, m, student=student)
    text = html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))
    assert bug["message"] in text[:text.index("Part 1")]  # in the summary, from the judge
    clip = next(b for b in BUGS if b["id"] == "clip-per-tensor")
    summary = " ".join(text[:text.index("Part 1")].split())
    assert f"Your clip_grad_norm behaves like a known mistake: {clip['mistake']}." in summary
    assert "Your adam_step behaves like a known mistake: " in summary and "Your adamw_step" not in summary
