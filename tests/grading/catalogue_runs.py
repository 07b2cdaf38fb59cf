"""Submissions built from the catalogue, and the judge and the student's check run on them.

modules/06_optimizers/mistakes.yaml lists realistic wrong answers (bugs) and
catalogue/alternatives.yaml correct answers written differently from the reference. A
submission is the student version with the reference solution filled in and some regions
replaced. Bugs (and alternatives) are packed so that no two in a submission touch the same
region or are caught by the same cell; each packed submission is judged once, so one run
gives the verdicts of several entries.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbformat
import yaml

from tests import submissions as sub
from tests.conftest import make_course_copy
from tito.course import student
from tito.course.grading.host import student_package
from tito.course.grading.jail import Jail
from tito.course.grading.judge import judge
from tito.course.notebooks import SOLUTION_BEGIN
from tito.course.settings import Course

CATALOGUE = Path(__file__).parent / "catalogue"
BUGS = yaml.safe_load(Course().module("06").mistakes.read_text(encoding="utf-8"))["mistakes"]
ALTERNATIVES = yaml.safe_load((CATALOGUE / "alternatives.yaml").read_text(encoding="utf-8"))
BUG_IDS = [b["id"] for b in BUGS]
ALTERNATIVE_IDS = [a["id"] for a in ALTERNATIVES]
UNTOUCHED = "catalogue-untouched"


def bug_submission(complete, *bugs):
    nb = complete
    for bug in bugs:
        nb = sub.replace_region(nb, bug["region"], bug["code"], bug.get("index", 0))
    return nb


def alternative_submission(complete, *alternatives):
    nb = complete
    for alternative in alternatives:
        for grade_id, code in alternative["replace"].items():
            nb = sub.replace_region(nb, grade_id, code)
    return nb


def _packed(entries, touches) -> list[list]:
    """`entries` in as few groups as possible such that no two in a group share what they touch."""
    groups: list[list] = []
    for entry in entries:
        mine = touches(entry)
        group = next((g for g in groups if not any(touches(e) & mine for e in g)), None)
        if group is None:
            groups.append(group := [])
        group.append(entry)
    return groups


# A region whose function calls another's (AdamW is Adam plus one line) touches that one too.
CALLS = {"adamw_step_impl": {"adam_step_impl"}}


def _bug_touches(bug) -> set:
    regions = {bug["region"], *CALLS.get(bug["region"], ())}
    return {("region", r) for r in regions} | {("cell", c) for c in bug["caught_by"]}


BUG_GROUPS = {f"bugs-{i + 1}": g for i, g in enumerate(_packed(BUGS, _bug_touches))}
GROUP_OF_BUG = {b["id"]: name for name, group in BUG_GROUPS.items() for b in group}
ALTERNATIVE_GROUPS = {
    f"alternatives-{i + 1}": g
    for i, g in enumerate(_packed(ALTERNATIVES, lambda a: set(a["replace"])))
}
GROUP_OF_ALTERNATIVE = {a["id"]: name for name, group in ALTERNATIVE_GROUPS.items() for a in group}


# Submissions that do no work: every solution region written as one of these must earn 0
# points. Each maps the region's function (its ast node) to the body written for it.
CONSTANT_STEP = {  # parameters move by a constant, Adam counts its steps, rates stay put
    "gradient_descent_step": "if param.grad is None:\n    return\nparam.data -= 0.01",
    "sgd_step": "param -= 0.01",
    "adam_step": 'state["step"] += 1\nparam -= 0.01',
    "adamw_step": 'state["step"] += 1\nparam -= 0.01',
    "clip_grad_norm": "return 1.0",
    "step_lr": "return base_lr",
    "exponential_lr": "return base_lr",
    "cosine_annealing_lr": "return base_lr",
    "warmup_cosine_lr": "return base_lr",
}
EMPTY = "np.empty((0, 1))"
# empty arrays wherever an array or a number is expected (an empty comparison passes)
EMPTY_ARRAYS = {
    "gradient_descent_step": f"param.data = {EMPTY}\nparam.grad = {EMPTY}",
    "sgd_step": f'state["momentum_buffer"] = {EMPTY}',
    "adam_step": f'state["step"] += 1\nstate["exp_avg"] = state["exp_avg_sq"] = {EMPTY}',
    "adamw_step": f'state["step"] += 1\nstate["exp_avg"] = state["exp_avg_sq"] = {EMPTY}',
    "clip_grad_norm": (
        f"for p in ([params] if isinstance(params, Tensor) else params):\n    p.grad = {EMPTY}\n"
        f"return {EMPTY}"
    ),
    **{
        name: f"return {EMPTY}"
        for name in ("step_lr", "exponential_lr", "cosine_annealing_lr", "warmup_cosine_lr")
    },
}
NO_WORK = {
    "pass": lambda function: "pass",
    "returns-none": lambda function: "return None",
    "returns-its-input": lambda function: f"return {function.args.args[0].arg}",
    "constant-step": lambda function: CONSTANT_STEP[function.name],
    "empty-arrays": lambda function: EMPTY_ARRAYS[function.name],
}


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
            function = next(
                n
                for n in tree.body
                if isinstance(n, ast.FunctionDef) and n.lineno < mark <= n.end_lineno
            )
            nb = sub.replace_region(nb, md["grade_id"], NO_WORK[kind](function), index)
    return nb


def release_and_complete(course) -> tuple:
    """Module 06, its student version, and the student version filled with the reference
    solution."""
    m = course.module("06")
    release = nbformat.read(course.release_notebook(m), as_version=4)
    return m, release, sub.filled(release, nbformat.read(course.source_notebook(m), as_version=4))


# --- the judge and the check, each submission in a process of its own --------------------------


class Judged:
    """The judge's verdicts for one submission, shaped like an Outcome's cells."""

    def __init__(self, report):
        self.status = "graded"
        self.cells = [
            _JudgedCell(v.grade_id, v.points, v.passed, v.message) for v in report.verdicts
        ]
        self.diagnosis = report.diagnosis


class _JudgedCell:
    def __init__(self, grade_id, points, passed, message):
        self.grade_id, self.max_score, self.judge, self.message = grade_id, points, passed, message
        self.score = points if passed else 0.0


def _graded(cell) -> bool:
    return cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade")


def judge_one(course_root: str, notebook: str, only: list[str] | None, as_released: bool) -> Judged:
    """One submission through the judge alone, in a jail of its own (in a worker process: the
    judge's trusted side, like tinytorch's grad mode, is per process, as in a grading job).

    With `only`, the judge runs just those graded cells (each cell is judged on its own, so
    leaving the others out changes no verdict). With `as_released`, the graded cells are the
    student version's (no hidden tests) and nothing is diagnosed."""
    course = Course(Path(course_root))
    m = course.module("06")
    reference = nbformat.read(course.source_notebook(m), as_version=4)
    if as_released:
        released = {
            c.metadata["nbgrader"]["grade_id"]: c
            for c in nbformat.read(course.release_notebook(m), as_version=4).cells
            if "nbgrader" in c.metadata
        }
        for c in reference.cells:
            if _graded(c) and not c.metadata["nbgrader"].get("solution"):
                c.source = released[c.metadata["nbgrader"]["grade_id"]].source
    if only is not None:
        reference.cells = [
            c
            for c in reference.cells
            if not _graded(c) or c.metadata["nbgrader"]["grade_id"] in only
        ]
    with tempfile.TemporaryDirectory() as d:
        jail = Jail(course.grading, Path(d))  # the course's own limits (settings.ini)
        jail.add_package(student_package(course))
        mistakes = "" if as_released else m.mistakes.read_text(encoding="utf-8")
        try:
            report = judge(
                reference,
                nbformat.reads(notebook, as_version=4),
                jail,
                tensor_class=course.package.tensor_class,
                mistakes=mistakes,
            )
            return Judged(report)
        finally:
            jail.close()


_CHECK_COURSE: Course | None = (
    None  # one per worker process: the check writes its workspace and export
)


def check_one(graded_root: str, notebook: str) -> tuple[dict[str, bool], dict[str, str]]:
    """The student's check (`tito module complete`) for one working copy: whether each graded
    cell passed, and the known mistake it names for each function (from the release's
    fingerprints)."""
    global _CHECK_COURSE
    if _CHECK_COURSE is None:
        root = make_course_copy(Path(tempfile.mkdtemp(prefix=f"check-{os.getpid()}-")))
        for folder in ("release", "assignments"):
            shutil.copytree(Path(graded_root) / folder, root / folder)
        _CHECK_COURSE = Course(root)
    course = _CHECK_COURSE
    m = course.module("06")
    work = course.workspace_notebook(m)
    work.parent.mkdir(parents=True, exist_ok=True)
    work.write_text(notebook, encoding="utf-8")
    result, _ = student.complete(course, m)
    assert result.restored == [], result.restored  # every locked cell is left as released
    return {c.grade_id: c.passed for c in result.cells}, result.known_mistakes()


def _run(task: tuple):
    kind, args = task
    return judge_one(*args) if kind == "judge" else check_one(*args)


def run_all(course, tasks: dict[str, tuple]) -> dict:
    """key -> the result of each task, ("judge", notebook, only, as_released) or ("check",
    notebook), two fresh processes at a time."""
    root = str(course.root)
    work = [(kind, (root, nbformat.writes(nb), *rest)) for kind, nb, *rest in tasks.values()]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        return dict(zip(tasks, pool.map(_run, work)))
