"""The student-bug catalogue and the correct alternatives, graded as the grader grades them, and
the student's check held against the grader on all of it.

Every bug must fail a cell named for it in the judge (whose verdict is what costs the points:
the kernel run can only lower a score) and be named by the diagnosis in its own region. Every
alternative must score full marks through the whole pipeline (jailed kernel run and judge,
where either could refuse it). Submissions that do no work, and the untouched student version,
score 0. The bugs are packed (catalogue_runs.py): no two in a submission share a region or a
catching cell, so a failing named cell and a diagnosis stay each bug's own.

The same submissions go through the check that `tito module complete` runs and through the
judge a second time with the tests as released (hidden parts left out), up to the last cell
with hidden tests; the cells after it are released as written, and the grader's verdict stands
for them. Cell by cell:
- the check agrees with the judge on the released tests, every cell;
- the check agrees with the grader on every cell that has no hidden tests;
- where they differ on a cell with hidden tests, the check passed, the grader failed, and the
  released part alone passes: a hidden part failed.
The fast tests at the top check the catalogue files themselves.
"""

from __future__ import annotations

import copy
import html
import inspect
import math
import re
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from tests import submissions as sub
from tests.conftest import make_course_copy, report_summary
from tests.grading.catalogue_runs import (
    ALTERNATIVE_GROUPS,
    ALTERNATIVE_IDS,
    ALTERNATIVES,
    BUG_GROUPS,
    BUG_IDS,
    BUGS,
    GROUP_OF_ALTERNATIVE,
    GROUP_OF_BUG,
    NO_WORK,
    UNTOUCHED,
    alternative_submission,
    bug_submission,
    no_work_submission,
    release_and_complete,
    run_all,
)
from tito.course import student
from tito.course.catalogue import load, region_functions
from tito.course.generate import generate
from tito.course.grading import feedback
from tito.course.grading.host import autograde
from tito.course.settings import Course

# The bug whose message the feedback test looks for in the HTML a student receives.
FEEDBACK_BUG = "adam-step-from-zero"
# Bugs that also go through the whole pipeline, together in one submission (one per part).
PIPELINE_BUGS = [
    FEEDBACK_BUG,
    "sgd-nesterov-old-buffer",
    "clip-per-tensor",
    "step-lr-one-epoch-early",
]
PIPELINE_BUGS_STUDENT = "pipeline-bugs"
BUG_FIELDS = {"id", "mistake", "region", "index", "caught_by", "touches", "code"}


def _cells(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


# --- the catalogue files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def instructor():
    course = Course(Path(__file__).parent)
    return nbformat.read(course.source_notebook(course.module("06")), as_version=4)


def _solution_cells(nb) -> set[str]:
    return {
        gid
        for gid, c in _cells(nb).items()
        if c.cell_type == "code" and c.metadata["nbgrader"].get("solution")
    }


def _grade_cells(nb) -> set[str]:
    return {
        gid
        for gid, c in _cells(nb).items()
        if c.cell_type == "code" and c.metadata["nbgrader"].get("grade")
    }


def test_catalogue_entries_have_exactly_the_documented_fields():
    id_format = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
    for bug in BUGS:
        fields = set(bug)
        assert (
            {"id", "mistake", "region", "caught_by", "touches", "code"} <= fields <= BUG_FIELDS
        ), f"bug entry {bug.get('id')}: fields {sorted(bug)}"
        assert isinstance(bug["caught_by"], list) and bug["caught_by"], (
            f"bug {bug['id']}: caught_by must be a non-empty list"
        )
    for alternative in ALTERNATIVES:
        assert set(alternative) == {"id", "why", "replace"}, (
            f"alternative {alternative.get('id')}: fields {sorted(alternative)}"
        )
        assert isinstance(alternative["replace"], dict) and alternative["replace"], (
            f"alternative {alternative['id']}: empty replace"
        )
    for entry in BUGS + ALTERNATIVES:
        assert id_format.fullmatch(entry["id"]), (
            f"id {entry['id']!r} is not lower-case words joined by '-'"
        )


def test_catalogue_ids_are_unique():
    assert len(set(BUG_IDS)) == len(BUG_IDS), sorted(i for i in BUG_IDS if BUG_IDS.count(i) > 1)
    assert len(set(ALTERNATIVE_IDS)) == len(ALTERNATIVE_IDS), sorted(
        i for i in ALTERNATIVE_IDS if ALTERNATIVE_IDS.count(i) > 1
    )


def test_catalogue_is_large_enough_and_covers_every_student_region(instructor):
    assert len(BUGS) >= 30 and len(ALTERNATIVES) >= 8, (
        f"{len(BUGS)} bugs, {len(ALTERNATIVES)} alternatives"
    )
    assert {b["region"] for b in BUGS} == _solution_cells(instructor)


def test_packed_bugs_share_no_region_and_no_catching_cell():
    assert sorted(b["id"] for g in BUG_GROUPS.values() for b in g) == sorted(BUG_IDS)
    for name, group in BUG_GROUPS.items():
        regions = [(b["region"], b.get("index", 0)) for b in group]
        cells = [c for b in group for c in b["caught_by"]]
        assert len(set(regions)) == len(regions) and len(set(cells)) == len(cells), name


@pytest.mark.parametrize("bug", BUGS, ids=BUG_IDS)
def test_bug_names_existing_cells_and_compiles(instructor, bug):
    assert bug["region"] in _solution_cells(instructor), f"{bug['region']} is not a solution cell"
    unknown = set(bug["caught_by"]) - _grade_cells(instructor)
    assert not unknown, f"unknown grade cells {unknown}"
    nb = bug_submission(instructor, bug)
    cell = _cells(nb)[bug["region"]]
    compile(cell.source, f"<bug {bug['id']}>", "exec")
    original = sub.region(instructor, bug["region"], bug.get("index", 0))
    changed = sub.region(nb, bug["region"], bug.get("index", 0))
    assert changed.split() != original.split(), "the code is the reference solution"


@pytest.mark.parametrize("alternative", ALTERNATIVES, ids=ALTERNATIVE_IDS)
def test_alternative_names_existing_cells_and_compiles(instructor, alternative):
    assert set(alternative["replace"]) <= _solution_cells(instructor), (
        f"not solution cells: {set(alternative['replace']) - _solution_cells(instructor)}"
    )
    nb = alternative_submission(instructor, alternative)
    for grade_id in alternative["replace"]:
        compile(
            _cells(nb)[grade_id].source, f"<alternative {alternative['id']} {grade_id}>", "exec"
        )


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
        nb = alternative_submission(reference, alternative)
        namespace: dict = {}
        for cell in nb.cells:
            if is_export_cell(cell):
                exec(cell.source, namespace)
        found = diagnosis.diagnose(reference, catalogue, {n: namespace[n] for n in names.values()})
        assert found == {}, (alternative["id"], found)


def test_each_wrong_version_is_the_reference_but_for_its_one_mistake():
    """A wrong version makes one mistake, so that a student who makes only that one is named: on
    every probe call its `touches` expression (over the call's arguments, as they were before it)
    says the mistake does not reach, it answers as the reference does; on the calls it reaches,
    it differs somewhere."""
    from tito.course.catalogue import answers, exported, fingerprint_function, wrong_version

    course = Course()
    m = course.module("06")
    reference = nbformat.read(course.source_notebook(m), as_version=4)
    catalogue = load(m.mistakes.read_text(encoding="utf-8"))
    fingerprint, names = fingerprint_function(reference), region_functions(reference)

    def probed(namespace, region):
        """(the bound arguments of each call the probe makes, the answer to each)."""
        function, calls = namespace[names[region]], []
        signature = inspect.signature(function)

        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            calls.append(copy.deepcopy(dict(bound.arguments)))  # as they were before the call
            return function(*args, **kwargs)

        with np.errstate(all="ignore"):
            return calls, answers(catalogue.probes[region], call, namespace)

    trusted = exported(reference)
    reference_answers = {region: probed(trusted, region) for region in catalogue.probes}
    for bug in catalogue.mistakes:
        calls, theirs = reference_answers[bug["region"]]
        _, wrong = probed(wrong_version(reference, bug), bug["region"])
        assert len(wrong) == len(theirs) == len(calls), bug["id"]
        # `touches` reads the call's arguments, and may call the reference's functions on them
        touched = [eval(bug["touches"], {**trusted, "math": math}, copy.deepcopy(c)) for c in calls]
        alike = [fingerprint([a]) == fingerprint([b]) for a, b in zip(wrong, theirs)]
        untouched_differ = [i for i, (t_, a) in enumerate(zip(touched, alike)) if not t_ and not a]
        assert untouched_differ == [], (bug["id"], [calls[i] for i in untouched_differ[:2]])
        assert not all(a for t_, a in zip(touched, alike) if t_), (bug["id"], "reaches nothing")


def _plain(value):
    """What a function is given, as plain data to compare calls by: numbers as floats, arrays by
    their values in order (whatever their shape), a Tensor by its values and its gradient's, and
    a Tensor without a gradient as just that (no function here reads its values)."""
    from tinytorch.core.tensor import Tensor

    if isinstance(value, np.ndarray):
        return ("array", tuple(value.astype(float).ravel().tolist()))
    if isinstance(value, Tensor):
        if value.grad is None:
            return "a Tensor without a gradient"
        return ("tensor", _plain(value.data), _plain(value.grad))
    if isinstance(value, dict):
        return ("dict", tuple((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_plain(v) for v in value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return repr(value)


@pytest.mark.slow
def test_no_probe_call_is_one_that_only_a_hidden_test_makes():
    """A wrong version's fingerprint holds the reference's answers on its probe's inputs (its one
    mistake aside), so a probe call that only a hidden test makes would let a student check their
    code on a hidden input. Every call each graded cell's visible and hidden parts make to a
    student's function is recorded (arguments bound to their names), then every call the probes
    make: none is a call that only hidden parts make."""
    from tito.course.catalogue import answers, exported
    from tito.course.grading.messages import parts
    from tito.course.notebooks import is_grade_cell, is_test_support_cell

    course = Course()
    m = course.module("06")
    reference = nbformat.read(course.source_notebook(m), as_version=4)
    catalogue = load(m.mistakes.read_text(encoding="utf-8"))
    names = region_functions(reference)
    namespace = exported(reference)
    calls: dict[str, set] = {"visible": set(), "hidden": set(), "probe": set()}
    where = ["visible"]

    def recording(function):
        signature = inspect.signature(function)

        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = {k: v for k, v in bound.arguments.items() if k != "scratch"}  # a work array
            calls[where[0]].add((function.__name__, _plain(given)))
            return function(*args, **kwargs)

        return call

    for name in names.values():  # the classes look their kernels up here, at call time
        namespace[name] = recording(namespace[name])
    support = [c.source for c in reference.cells if is_test_support_cell(c)]
    for cell in reference.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if cell.cell_type != "code" or not is_grade_cell(cell) or gid.startswith("mlp_"):
            continue  # the two training cells make no hidden call and take seconds
        cell_namespace = dict(namespace)
        for code in support:
            exec(code, cell_namespace)
        for code, hidden in parts(cell.source, gid):
            where[0] = "hidden" if hidden else "visible"
            with np.errstate(all="ignore"):
                exec(code, cell_namespace)
    where[0] = "probe"
    for region, probe in catalogue.probes.items():
        answers(probe, namespace[names[region]], namespace)
    hidden_only = calls["hidden"] - calls["visible"]
    assert len(hidden_only) > 100 and len(calls["probe"]) > 100  # both sides were recorded
    leaked = calls["probe"] & hidden_only
    assert leaked == set(), sorted(name for name, _ in leaked)


# --- the whole catalogue: the pipeline, the judge and the student's check ------------------


@pytest.fixture(scope="module")
def batch(tmp_path_factory, request):
    # A course of its own at the course's own limits (settings.ini): nothing here runs away, so
    # the short cell limit of the hostile batches' course would only make a kernel run that a
    # loaded machine holds back count as starved (past a quarter of the limit) and be `failed`.
    course = Course(make_course_copy(tmp_path_factory.mktemp("catalogue")))
    generate(course, course.module("06"))
    m, release, complete = release_and_complete(course)
    several_bugs = bug_submission(complete, *(b for b in BUGS if b["id"] in PIPELINE_BUGS))
    checked = {
        UNTOUCHED: release,
        **{name: bug_submission(complete, *group) for name, group in BUG_GROUPS.items()},
        **{name: alternative_submission(complete, *g) for name, g in ALTERNATIVE_GROUPS.items()},
        **{f"no-work-{kind}": no_work_submission(complete, kind) for kind in NO_WORK},
    }
    pipeline = {
        UNTOUCHED: release,
        PIPELINE_BUGS_STUDENT: several_bugs,
        **{name: checked[name] for name in ALTERNATIVE_GROUPS},
    }
    for student_id, nb in pipeline.items():
        path = course.root / "submitted" / student_id / m.name / f"{m.notebook}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
    hidden = {
        c.metadata["nbgrader"]["grade_id"]
        for c in release.cells
        if c.metadata.get("nbgrader", {}).get("grade")
        and c.cell_type == "code"
        and student.has_hidden_tests(c.source)
    }
    # As released, a test cell without hidden tests is what the instructor wrote. The judge runs
    # the cells in order in one student process, and a bug may keep state from cell to cell: the
    # judge as released runs every cell up to the last one with hidden tests. The cells after it
    # (the training runs) are judged once, by the grader; the check is held against that verdict.
    instructor = _cells(nbformat.read(course.source_notebook(m), as_version=4))
    graded = [
        gid
        for gid, c in _cells(release).items()
        if c.cell_type == "code" and c.metadata["nbgrader"].get("grade")
    ]
    assert {
        gid
        for gid in graded
        if not instructor[gid].metadata["nbgrader"].get("solution")
        and _cells(release)[gid].source != instructor[gid].source
    } == hidden
    up_to_hidden = graded[: max(graded.index(gid) for gid in hidden) + 1]
    start = time.monotonic()
    outcomes = {o.student: o for o in autograde(course, m, list(pipeline), workers=2)}
    # A machine too busy to grade (another test file's batch on the other worker) fails an
    # outcome and scores nothing; what the grader then asks for is grading it again, here up to
    # three times while the other batch keeps the machine busy.
    busy: set[str] = set()
    for _ in range(3):
        again = [s for s, o in outcomes.items() if o.status == "failed"]
        if not again:
            break
        busy.update(again)
        outcomes.update({o.student: o for o in autograde(course, m, again, workers=1)})
    tasks = {
        **{("judge", name): ("judge", nb, None, False) for name, nb in checked.items()},
        ("judge", PIPELINE_BUGS_STUDENT): ("judge", several_bugs, None, False),
        **{("released", name): ("judge", nb, up_to_hidden, True) for name, nb in checked.items()},
        **{("check", name): ("check", nb) for name, nb in checked.items()},
    }
    runs = run_all(course, tasks)
    seconds = time.monotonic() - start
    judged = {name: runs["judge", name] for name in [*checked, PIPELINE_BUGS_STUDENT]}
    rows = {}
    for name in checked:
        assert [c.grade_id for c in runs["released", name].cells] == up_to_hidden
        released = {c.grade_id: c.judge for c in judged[name].cells}
        released.update({c.grade_id: c.judge for c in runs["released", name].cells})
        rows[name] = {
            c.grade_id: (runs["check", name][0][c.grade_id], c.judge, released[c.grade_id])
            for c in judged[name].cells
        }

    caught = sum(bool(_caught(judged[GROUP_OF_BUG[b["id"]]], b)) for b in BUGS)
    named = sum(_named(judged[GROUP_OF_BUG[b["id"]]], b) for b in BUGS)
    functions = region_functions(nbformat.read(course.source_notebook(m), as_version=4))
    local = {
        b["id"]: runs["check", GROUP_OF_BUG[b["id"]]][1].get(functions[b["region"]], "")
        for b in BUGS
    }
    named_locally = sum(b["mistake"] in local[b["id"]] for b in BUGS)
    local_alternatives = {name: runs["check", name][1] for name in ALTERNATIVE_GROUPS}
    accepted = sum(_full_marks(outcomes[GROUP_OF_ALTERNATIVE[a["id"]]]) for a in ALTERNATIVES)
    zero = sum(_points(judged[f"no-work-{kind}"]) == 0.0 for kind in NO_WORK)
    untouched = outcomes[UNTOUCHED]
    report_summary(
        request.config,
        "student-bug catalogue (06_optimizers)",
        f"{caught}/{len(BUGS)} bugs caught, {named}/{len(BUGS)} named by the diagnosis, "
        f"{named_locally}/{len(BUGS)} named by the student's check, "
        f"{accepted}/{len(ALTERNATIVES)} alternatives accepted, "
        f"{zero}/{len(NO_WORK)} no-work submissions at 0, "
        f"untouched student version {untouched.score:g}/{untouched.max_score:g}; "
        f"{len(pipeline)} submissions through the pipeline ({len(busy)} graded again after a "
        f"busy machine failed them), {len(checked)} through the judge "
        f"and the check in {seconds:.0f} s",
    )
    cells = sum(len(r) for r in rows.values())
    same = sum(local == grader for r in rows.values() for local, grader, _ in r.values())
    hidden_failed = sum(
        v == (True, False, True) and cell in hidden for r in rows.values() for cell, v in r.items()
    )
    report_summary(
        request.config,
        "the student's check against the grader (06_optimizers)",
        f"{len(checked)} submissions, {cells} cell verdicts: {same} the same, {cells - same} "
        f"different, of which {hidden_failed} are a hidden part failing",
    )
    return dict(
        course=course,
        module=m,
        outcomes=outcomes,
        judged=judged,
        rows=rows,
        hidden=hidden,
        local=local,
        local_alternatives=local_alternatives,
        local_untouched=runs["check", UNTOUCHED][1],
    )


def _caught(outcome, bug) -> list:
    """The named cells in which the judge failed the bug (and, through the pipeline, points were
    lost)."""
    return [
        c
        for c in outcome.cells
        if c.grade_id in bug["caught_by"] and c.judge is False and c.score < c.max_score
    ]


def _full_marks(outcome) -> bool:
    return outcome.status == "graded" and all(c.score == c.max_score for c in outcome.cells)


def _points(outcome) -> float:
    return sum(c.score for c in outcome.cells)


def _named(judged, bug) -> bool:
    """The diagnosis names the bug in its own region."""
    return bug["id"] in judged.diagnosis.get(bug["region"], [])


# Two pairs of catalogued mistakes give the same numbers on every probe: named together.
SAME_ON_EVERY_PROBE = [
    ["sgd-buffer-starts-at-zero", "sgd-dampening-on-first-step"],
    ["adam-bias-correction-t-minus-one", "adam-step-from-zero"],
]


@pytest.mark.slow
@pytest.mark.parametrize("bug", BUGS, ids=BUG_IDS)
def test_bug_loses_points_in_a_named_cell_and_the_diagnosis_names_it(batch, bug):
    judged = batch["judged"][GROUP_OF_BUG[bug["id"]]]
    lost = [c.grade_id for c in judged.cells if c.score < c.max_score]
    assert _caught(judged, bug), (
        f"{bug['mistake']}: no points lost in {bug['caught_by']} (lost in {lost})"
    )
    named = judged.diagnosis.get(bug["region"], [])
    assert named == [bug["id"]] or sorted(named) in SAME_ON_EVERY_PROBE, judged.diagnosis


@pytest.mark.slow
@pytest.mark.parametrize("bug", BUGS, ids=BUG_IDS)
def test_the_students_check_names_the_bug_as_the_grader_does(batch, bug):
    """`tito module complete` on the same submission names the mistake, from the fingerprints
    the release holds: the same entries the grader's diagnosis names."""
    local = batch["local"][bug["id"]]
    named = batch["judged"][GROUP_OF_BUG[bug["id"]]].diagnosis.get(bug["region"], [])
    text = {b["id"]: b["mistake"] for b in BUGS}
    assert local == " or ".join(text[i] for i in named), (local, named)


@pytest.mark.slow
def test_the_students_check_names_nothing_for_the_alternatives_and_the_student_version(batch):
    assert batch["local_alternatives"] == {name: {} for name in ALTERNATIVE_GROUPS}
    assert batch["local_untouched"] == {}


@pytest.mark.slow
def test_the_diagnosis_names_only_the_regions_that_hold_a_bug(batch):
    for name, group in BUG_GROUPS.items():
        assert set(batch["judged"][name].diagnosis) == {b["region"] for b in group}, name


@pytest.mark.slow
def test_the_pipeline_records_the_diagnosis_of_a_submission_with_several_bugs(batch):
    outcome = batch["outcomes"][PIPELINE_BUGS_STUDENT]
    bugs = [next(b for b in BUGS if b["id"] == bug_id) for bug_id in PIPELINE_BUGS]
    assert sorted(outcome.diagnosis) == sorted(b["region"] for b in bugs)
    assert all(b["id"] in outcome.diagnosis[b["region"]] for b in bugs), outcome.diagnosis


@pytest.mark.slow
@pytest.mark.parametrize("kind", NO_WORK)
def test_a_submission_that_does_no_work_earns_nothing(batch, kind):
    o = batch["judged"][f"no-work-{kind}"]
    assert [c.grade_id for c in o.cells if c.score] == [], (
        f"every solution region written as {kind}"
    )


@pytest.mark.slow
def test_untouched_student_version_scores_zero(batch):
    o = batch["outcomes"][UNTOUCHED]
    scored = [(c.grade_id, c.score) for c in o.cells if c.score]
    assert (o.status, o.score) == ("graded", 0.0), (o.status, o.reason, scored)


@pytest.mark.slow
def test_bugs_the_judge_fails_cost_their_points_through_the_pipeline(batch):
    judged = batch["judged"][PIPELINE_BUGS_STUDENT]
    graded = batch["outcomes"][PIPELINE_BUGS_STUDENT]
    assert graded.status == "graded", graded.reason
    assert [(c.grade_id, c.judge) for c in graded.cells] == [
        (c.grade_id, c.judge) for c in judged.cells
    ]
    lost = {c.grade_id for c in graded.cells if c.score == 0.0 < c.max_score}
    for bug_id in PIPELINE_BUGS:
        bug = next(b for b in BUGS if b["id"] == bug_id)
        assert _caught(judged, bug), (
            f"{bug_id}: not failed in {bug['caught_by']} next to the other bugs"
        )
        assert lost >= {c.grade_id for c in _caught(judged, bug)}, bug_id


@pytest.mark.slow
@pytest.mark.parametrize("alternative", ALTERNATIVES, ids=ALTERNATIVE_IDS)
def test_alternative_scores_full_marks(batch, alternative):
    student_id = GROUP_OF_ALTERNATIVE[alternative["id"]]
    graded = batch["outcomes"][student_id]
    together = [a["id"] for a in ALTERNATIVE_GROUPS[student_id]]
    assert graded.status == "graded", f"{student_id} ({together}): {graded.status}: {graded.reason}"
    lost = [(c.grade_id, c.message) for c in graded.cells if c.score < c.max_score]
    assert lost == [], f"{student_id}: {together}"
    assert graded.score == graded.max_score


@pytest.mark.slow
def test_feedback_html_shows_the_diagnostic_message(batch):
    course, m = batch["course"], batch["module"]
    bug = next(b for b in BUGS if b["id"] == FEEDBACK_BUG)
    (path,) = feedback.generate(course, m, student=PIPELINE_BUGS_STUDENT)
    text = html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))
    summary = " ".join(text[: text.index("Part 1")].split())
    assert bug["mistake"] in text[: text.index("Part 1")]  # in the summary, from the judge
    clip = next(b for b in BUGS if b["id"] == "clip-per-tensor")
    assert f"Your clip_grad_norm behaves like a known mistake: {clip['mistake']}." in summary
    assert (
        "Your adam_step behaves like a known mistake: " in summary
        and "Your adamw_step" not in summary
    )


# --- the student's check against the grader -------------------------------------------------


@pytest.mark.slow
def test_every_bug_alternative_and_no_work_submission_goes_through_both(batch):
    names = set(batch["rows"])
    assert {n for n in names if n.startswith("bugs-")} == set(BUG_GROUPS)
    assert {f"no-work-{kind}" for kind in NO_WORK} | set(ALTERNATIVE_GROUPS) | {UNTOUCHED} <= names
    assert {len(row) for row in batch["rows"].values()} == {45}


@pytest.mark.slow
def test_the_check_agrees_with_the_judge_on_the_released_tests(batch):
    differ = {
        (name, cell): (local, released)
        for name, row in batch["rows"].items()
        for cell, (local, _, released) in row.items()
        if local != released
    }
    assert differ == {}, sorted(differ.items())


@pytest.mark.slow
def test_the_check_agrees_with_the_grader_wherever_no_test_is_hidden(batch):
    differ = {
        (name, cell)
        for name, row in batch["rows"].items()
        for cell, (local, grader, _) in row.items()
        if local != grader and cell not in batch["hidden"]
    }
    assert differ == set(), sorted(differ)


@pytest.mark.slow
def test_every_difference_is_a_hidden_part_failing(batch):
    differences = [
        (name, cell, *verdicts)
        for name, row in batch["rows"].items()
        for cell, verdicts in row.items()
        if verdicts[0] != verdicts[1]
    ]
    assert differences, "no submission fails a hidden part: the catalogue no longer tests them"
    odd = [d for d in differences if d[2:] != (True, False, True) or d[1] not in batch["hidden"]]
    assert odd == []
