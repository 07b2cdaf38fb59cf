"""The host: the queue of submissions, and the one place automatic scores are decided and recorded.

Follow one submission through `autograde`:
1. `read_submission` and `prepare` (here, no student code runs): read the submitted file
   (a regular file, at most `max_submission_mb`, at most `max_cells` cells), check it is a notebook,
   and run nbgrader's own sanitizing preprocessors on it in memory (clear outputs, restore
   locked and deleted test cells from the gradebook, drop duplicated grade cells); what they
   return holds the hidden tests and is never written. The copy for display (display.py) is
   made from it.
2. the job (job.py): the prepared notebook, without its hidden tests, runs in a jailed kernel,
   and the judge runs the instructor's tests against the student's functions in a jailed
   process. It returns data.
3. `decide` (here): the executed outputs are copied into the copy for display cell by cell,
   as display.py allows them (cell sources and metadata stay the host's), and each graded
   cell scores the minimum of the judge's verdict and the kernel run's.
4. `record` (here): the scores go to the gradebook, the one record of scores (scores.py reads
   it for every view); manual scores already there are never touched. A failed outcome
   writes no automatic score (not 0): its cells wait for a new grade. The rest of the Outcome
   (status, reason, isolation, the verdicts and the judge's messages) is written to
   `autograded/<student>/<module>/grading.json`.
Any exception on the way makes that one submission `failed` with the reason; the batch goes on.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from nbformat.v4.rwbase import strip_transient
from nbgrader.api import MissingEntry
from nbgrader.nbgraderformat import MetadataValidator, SchemaTooNewError, SchemaTooOldError
from nbgrader.nbgraderformat import ValidationError as MetadataError
from nbgrader.utils import determine_grade, is_grade

from ..nbgrader_setup import gradebook, gradebook_url, nbgrader_config, quiet
from ..notebooks import SOLUTION_BEGIN, dumps, is_grade_cell, write_if_changed
from ..preprocessors import duplicated_ids
from ..settings import Course, CourseError, Module
from . import jail as jail_module
from .cluster import Cluster
from .diagnosis import load
from .display import DisplayLimits, for_display, outputs_for_display, without_hidden_tests
from .files import read_regular
from .jailed.protocol import load_class
from .job import Job, JobResult, close_warm_processes, run_in_process
from .judge import NOT_RUN_IN_TIME
from .outcome import OUTCOME_FILE, CellScore, Outcome, digest, load_outcome


def grading_digests(
    course: Course, m: Module, course_root: Path | None = None, jail: bool = True
) -> dict[str, str]:
    """Digests of what grades a submission of `m` now: the instructor notebook (tests and hidden
    tests), the package files given to the jail, the configuration (limits, jail, the class that
    crosses it) and the grader's own code. An outcome keeps them, so `verify` can tell which
    outcomes a change would touch."""
    config = {
        # what grades a submission: the archive limit is collect's alone
        "limits": {k: v for k, v in asdict(course.grading).items() if k != "max_archive_member_mb"},
        "jail": jail,
        "tensor_class": course.package.tensor_class,
        "display": asdict(course.display_limits),
    }
    return {
        "instructor": digest(course.source_notebook(m, course_root).read_bytes()),
        "package": digest(json.dumps(student_package(course), sort_keys=True).encode()),
        "config": digest(json.dumps(config, sort_keys=True).encode()),
        "grader": grader_digest(),
    }


# The files whose code decides an outcome, relative to tito/course: reading and preparing a
# submission, the job, the jail and what runs in it, the judge and the diagnosis, deciding and
# recording. The views (report, feedback, analytics, similarity, the LMS file, formgrader) and
# the example submissions are not on this path: changing them changes no outcome.
GRADING_PATH = (
    "catalogue.py",
    "notebooks.py",
    "nbgrader_setup.py",
    "preprocessors.py",
    "settings.py",
    "grading/cgroups.py",
    "grading/cluster.py",
    "grading/diagnosis.py",
    "grading/display.py",
    "grading/files.py",
    "grading/host.py",
    "grading/jail.py",
    "grading/jailed/execute.py",
    "grading/jailed/protocol.py",
    "grading/jailed/sandbox.py",
    "grading/job.py",
    "grading/judge.py",
    "grading/messages.py",
    "grading/outcome.py",
    "grading/processes.py",
    "grading/syscalls.py",
)


def grader_digest(course_code: Path = Path(__file__).parents[1]) -> str:
    """The grader's version: a digest of the files on GRADING_PATH under `course_code` (the
    folder tito/course)."""
    return digest(
        b"".join(
            name.encode() + b"\0" + digest((course_code / name).read_bytes()).encode()
            for name in GRADING_PATH
        )
    )


# -- 1. prepare --------------------------------------------------------------------------


def _cells(reference, reason: str, score: float | None) -> list[CellScore]:
    """Every graded cell at `score`: 0.0 for an invalid submission (the student's), None for a
    failed one (the grader's or the machine's: no score at all)."""
    return [
        CellScore(
            c.metadata["nbgrader"]["grade_id"],
            float(c.metadata["nbgrader"].get("points", 0)),
            score,
            None,
            None,
            reason,
        )
        for c in reference.cells
        if is_grade_cell(c)
    ]


def read_submission(
    course: Course, root: Path, m: Module, student: str, reference
) -> tuple[nbformat.NotebookNode, str] | Outcome:
    """(the submitted notebook, parsed and checked, and the digest of its bytes), or why not
    (with the digest when there were bytes). No lock held: it may be large."""
    path = course.submission_notebook(m, student, root)
    limits = course.grading

    received = ""  # the digest of the bytes read, once there are some

    def invalid(reason: str) -> Outcome:
        return Outcome(
            student,
            m.name,
            "invalid",
            reason,
            _cells(reference, reason, 0.0),
            digests={"submission": received} if received else {},
        )

    try:
        for folder in (path.parent.parent, path.parent):
            if folder.is_symlink():
                return invalid(f"{folder.relative_to(root)} is a symbolic link, not a folder")
        raw = read_regular(path, limits.max_submission_mb << 20)
    except FileNotFoundError:
        return invalid(f"no submission at {path.relative_to(root)}")
    except OSError as e:
        return invalid(f"the submission cannot be read: {e}")
    received = digest(raw)
    try:
        submitted = nbformat.reads(raw.decode("utf-8"), as_version=4)
        cells, most = len(submitted.get("cells", [])), course.display_limits.max_cells
        if cells > most:
            return invalid(
                f"the notebook has {cells:,} cells, more than the {most:,} a submission may have "
                "(max_cells in settings.ini): start again from the student version"
            )
        nbformat.validate(submitted)
    except Exception as e:
        return invalid(
            f"not a valid notebook: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
        )
    if _SURROGATE.search(
        json.dumps(submitted, ensure_ascii=False)
    ):  # nbgrader could not write it back
        return invalid(_invalid_unicode(submitted))
    expected = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in reference.cells
        if "grade_id" in c.metadata.get("nbgrader", {})
    }
    for i, cell in enumerate(submitted.cells):
        problem = _metadata_problem(cell, expected)
        if problem:
            return invalid(
                f"cell {i} ({cell.get('id', '?')}) {problem}: start again from the student "
                "version, or copy your answers into it"
            )
    return submitted, received


def _metadata_problem(cell, expected: dict) -> str:
    """What is wrong with a submitted cell's nbgrader metadata for nbgrader's own steps, or "".

    Its shape is checked by nbgrader's validator (flags, points, schema version); a cell marked
    as graded, a solution or locked must be one of the module's (`expected`: grade id -> cell),
    and a cell with one of the module's grade ids must keep its type, flags and points, else
    nbgrader's checksums or its restoring of cells stop it."""

    md = cell.metadata.get("nbgrader")
    if md is None:
        return ""
    if not isinstance(md, dict) or not isinstance(md.get("grade_id", ""), str):
        return "has nbgrader metadata of the wrong shape"
    try:
        MetadataValidator().validate_cell(cell)
    except (MetadataError, SchemaTooNewError, SchemaTooOldError) as e:
        return (
            f"has nbgrader metadata nbgrader cannot read ({(str(e).splitlines() or [''])[0][:120]})"
        )
    grade_id = md.get("grade_id", "")
    module = expected.get(grade_id)
    if module is None:
        if md.get("grade") or md.get("solution") or md.get("locked"):
            return f"is marked as the module's cell {grade_id!r}, which the module does not have"
        return ""
    if cell.cell_type != module.cell_type:
        return f"is the module's {module.cell_type} cell {grade_id!r} made a {cell.cell_type} cell"
    theirs = module.metadata["nbgrader"]
    for key, default in (("grade", False), ("solution", False), ("locked", False), ("points", 0)):
        if md.get(key, default) != theirs.get(key, default):
            return (
                f"changes the {key} of the module's cell {grade_id!r} "
                f"({md.get(key)!r} instead of {theirs.get(key)!r})"
            )
    return ""


def _invalid_unicode(nb) -> str:
    where = next(
        (
            f"cell {i} ({c.get('id', '?')})"
            for i, c in enumerate(nb.cells)
            if _SURROGATE.search(json.dumps(c, ensure_ascii=False))
        ),
        "its metadata",
    )
    return (
        f"the notebook is not valid Unicode: {where} holds a lone surrogate (\\udXXX), "
        "text that Jupyter "
        "cannot save; remove it and hand the notebook in again"
    )


def prepare(
    course: Course, root: Path, m: Module, student: str, submitted, reference
) -> tuple[nbformat.NotebookNode, list[str]] | Outcome:
    """(the submission as nbgrader's sanitizing steps leave it, notes on what they changed), or
    an Outcome saying why not.

    nbgrader's own preprocessors (the course's `Autograde.sanitize_preprocessors`) run here, in
    memory, on a copy of the parsed submission: outputs cleared, duplicated grade cells
    dropped, locked and deleted cells restored from the gradebook. Its result holds the hidden
    tests and the raw markdown, so it is never written anywhere. As nbgrader's autograde does
    first, the gradebook gets the student and the submission (with the time in the
    submission's timestamp.txt, when it has a readable one).
    """
    config = nbgrader_config(course, root)
    notes = [f"duplicated cell {d!r}: one copy graded" for d in duplicated_ids(submitted)]
    submitted_at, note = _timestamp(course, root, m, student)
    notes += [note] if note else []
    with quiet(), gradebook(course, root) as gb:  # nbgrader's API warns on stderr
        gb.update_or_create_student(student)
        gb.update_or_create_submission(m.name, student, **submitted_at)
    resources = {
        "nbgrader": {
            "student": student,
            "assignment": m.name,
            "notebook": m.notebook,
            "db_url": gradebook_url(course, root),
        }
    }
    nb = copy.deepcopy(submitted)
    try:
        with quiet():
            for step in config.Autograde.sanitize_preprocessors:
                nb, resources = step(config=config, enabled=True, log=_QUIET)(nb, resources)
            strip_transient(nb)  # as nbgrader's copy on disk had it: no orig_nbformat, trust flag
            nbformat.validate(nb)  # and gives a restored cell an id, as its copy's reading did
    except Exception as e:
        error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"[:300]
        lost = _lost_cells(error, submitted, reference)
        if lost:  # the submission's doing: it deleted cells nbgrader cannot put back
            reason = (
                f"the notebook lost {len(lost)} of the module's cells ({', '.join(lost[:3])}"
                f"{', ...' if len(lost) > 3 else ''}) and nbgrader cannot put them back ({error}): "
                "start again from the student version, or copy your answers into it"
            )
            return Outcome(student, m.name, "invalid", reason, _cells(reference, reason, 0.0))
        reason = "nbgrader could not prepare the submission: " + error
        return Outcome(student, m.name, "failed", reason, _cells(reference, reason, None))
    return nb, notes


# nbgrader's preprocessors log what they restore; the outcome says what matters (notes, reason).
_QUIET = logging.getLogger("tito.grading.nbgrader")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


def _timestamp(course: Course, root: Path, m: Module, student: str) -> tuple[dict, str]:
    """The submission time for the gradebook, from the submission's timestamp.txt, as keyword
    arguments; and a note when the file is there but cannot be used.

    The time is read as ISO 8601, as nbgrader writes it ("2026-12-01 09:30:00.000000 UTC"), and
    never with nbgrader's lenient parser, which would open a time zone file the text names."""
    path = course.student_folder("submitted", m, student, root) / "timestamp.txt"
    try:
        text = read_regular(path, 1 << 20, setting="").decode().strip()
        if not text:
            return {}, ""
        when = datetime.fromisoformat(text.removesuffix(" UTC"))
        if when.tzinfo is not None:  # the gradebook keeps UTC without a zone
            when = when.astimezone(UTC).replace(tzinfo=None)
        return {"timestamp": when}, ""
    except FileNotFoundError:
        return {}, ""
    except Exception as e:  # a student's file: recorded without a time, never failed
        return {}, f"timestamp.txt not used ({str(e)[:100]}): recorded without a submission time"


def _lost_cells(error: str, submitted, reference) -> list[str]:
    """The module's cells the submission lost, when nbgrader's error (a KeyError of one of the
    module's cell ids) comes from putting them back: nbgrader places a restored cell after the
    one before it and fails when that one is not a graded or solution cell. Else []."""
    named = re.fullmatch(r"KeyError: '([^']+)'", error)
    module, kept = (
        [
            c.metadata["nbgrader"]["grade_id"]
            for c in nb.cells
            if "grade_id" in c.metadata.get("nbgrader", {})
        ]
        for nb in (reference, submitted)
    )
    if not named or named[1] not in module:
        return []
    return [g for g in module if g not in kept]


def student_package(course: Course) -> dict[str, str]:
    """The package files the course gives to the jail (settings.ini [package] jail_files), by path.

    Each must lie inside the package folder and hold no solution marker: a line of settings must
    not be able to hand the reference solutions to every submission."""
    package = course.directory("package").resolve()
    out = {}
    for rel in course.package.jail_files:
        path = (course.root / rel).resolve()
        if not path.is_relative_to(package) or path.suffix != ".py":
            raise CourseError(
                f"settings.ini [package] jail_files names {rel}, which is not a .py file of the "
                f"package folder {package.name}/"
            )
        try:
            text = read_regular(course.root / rel, 16 << 20).decode("utf-8")
        except (OSError, ValueError) as e:
            raise CourseError(
                f"settings.ini [package] jail_files names {rel}, which cannot be read ({e}): "
                "`tito export --all` writes the package"
            ) from None
        if SOLUTION_BEGIN in text:
            raise CourseError(
                f"settings.ini [package] jail_files names {rel}, which holds a solution "
                f"({SOLUTION_BEGIN}): it must not go to the jail"
            )
        out[path.relative_to(package.parent).as_posix()] = text
    return out


# -- 3. decide -----------------------------------------------------------------------------


def merge_outputs(shown, executed: str, limits: DisplayLimits) -> tuple[nbformat.NotebookNode, str]:
    """The notebook for display with the outputs the jailed run returned; a note if none could be
    used.

    Only outputs cross, as display.py allows them: cell sources and metadata stay the host's,
    so the returned notebook cannot move, add or relabel graded cells.
    """
    nb = copy.deepcopy(shown)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    try:
        returned = valid_text(json.loads(executed))
        dropped = _trim_outputs(returned["notebook"], limits.max_outputs_per_cell)
        # Through nbformat's reader, which normalises what the schema allows (e.g. text as a list).
        run = nbformat.reads(json.dumps(returned["notebook"]), as_version=4)
        nbformat.validate(run)
        error = str(returned.get("error") or "")[:500]
    except Exception:
        return nb, "the kernel run returned no readable notebook"
    if [(c.cell_type, c.get("id")) for c in run.cells] != [
        (c.cell_type, c.get("id")) for c in nb.cells
    ]:
        return nb, "the kernel run returned a notebook with other cells; its outputs were not used"
    for cell, ran, extra in zip(nb.cells, run.cells, dropped):
        if cell.cell_type == "code":
            cell.outputs = outputs_for_display(ran.outputs, limits, extra)
            cell.execution_count = ran.execution_count
    return nb, (f"the kernel stopped: {error}" if error else "")


def _trim_outputs(notebook: dict, most: int) -> list[int]:
    """Cut each cell's returned outputs to `most` + 1 before any schema check; per cell, how many
    went."""
    dropped = []
    for cell in notebook["cells"]:
        outputs = cell.get("outputs") if isinstance(cell, dict) else None
        extra = (
            len(outputs) - (most + 1)
            if isinstance(outputs, list) and len(outputs) > most + 1
            else 0
        )
        if extra:
            del outputs[most + 1 :]
        dropped.append(extra)
    return dropped


_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, only a lone one is left (JSON joins pairs)


def valid_text(value):
    """`value` (JSON data) with every string valid UTF-8: lone surrogates become U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [valid_text(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k): valid_text(v) for k, v in value.items()}
    return value


def _kernel_score(cell) -> float:
    if cell.execution_count is None:  # never ran: nothing was shown to pass
        return 0.0
    try:
        return float(determine_grade(cell)[0] or 0.0)
    except (ValueError, KeyError, TypeError):  # a result nbgrader cannot read as points
        return 0.0


def decide(
    student: str,
    m: Module,
    reference,
    shown,
    notes: list[str],
    result: JobResult,
    limits: DisplayLimits,
) -> tuple[Outcome, nbformat.NotebookNode]:
    """The Outcome of one submission from its job's data; the notebook to keep for feedback."""
    notes = list(notes)
    result = JobResult(**valid_text(asdict(result)))
    merged, run_note = merge_outputs(shown, result.executed, limits)
    for stage in result.memory_limit_hit:  # the submission's own use: recorded, and it stays graded
        notes.append(
            f"the {stage} run held more than memory_limit_mb with all its processes and was stopped"
        )
    if "kernel" in result.memory_limit_hit:
        run_note = ""  # cells the stopped kernel never ran score 0 in the notebook
    failure = result.failure  # the job could not finish for a reason not the submission's
    if not failure and not result.kernel_started:  # before any code of the submission ran
        why = result.execution_note or run_note or "no reason given"
        failure = f"the notebook's kernel did not start ({why})"
    if failure:
        return Outcome(
            student, m.name, "failed", failure, _cells(reference, failure, None), result.isolation
        ), merged
    # Everything in the kernel run's jail is the submission's: a kernel (or its client) that
    # died, too much output, a notebook that is no longer the one sent. The cells it did not
    # show passing score 0 in the kernel's verdict; a machine too busy is told apart below.
    stopped = "; ".join(x for x in (result.execution_note, run_note) if x)
    if stopped:
        notes.append(f"{stopped}: the cells it did not run score 0")
    kernel = {
        c.metadata["nbgrader"]["grade_id"]: _kernel_score(c)
        for c in merged.cells
        if is_grade_cell(c)
    }
    verdicts = {v["grade_id"]: v for v in result.verdicts}
    cells = []
    for c in reference.cells:
        if not is_grade_cell(c):
            continue
        gid, points = (
            c.metadata["nbgrader"]["grade_id"],
            float(c.metadata["nbgrader"].get("points", 0)),
        )
        v, k = verdicts.get(gid), kernel.get(gid)
        passed = bool(v and v["passed"])
        score = min(points if passed else 0.0, k or 0.0)
        msg = (v or {}).get("message", "not judged")
        if passed and score < points:
            msg = "failed when run in the notebook (see the feedback)"
        cells.append(CellScore(gid, points, score, k, v["passed"] if v else None, msg))
    out_of_time = {v["grade_id"] for v in result.verdicts if v["message"] == NOT_RUN_IN_TIME}
    lost_to_the_run = [
        c for c in cells if c.score < c.max_score and (c.judge or c.grade_id in out_of_time)
    ]
    if result.kernel_busy and lost_to_the_run:
        # Points lost in a kernel run the machine kept waiting, or in cells the judge had no
        # time left for after it: not the student's to lose.
        reason = (
            f"{result.kernel_busy}; grade it again (autograde --retry-failed) "
            "when the machine is less loaded"
        )
        return Outcome(
            student, m.name, "failed", reason, _cells(reference, reason, None), result.isolation
        ), merged
    if result.cell_errors:
        notes.append("errors in exported cells: " + "; ".join(result.cell_errors[:3]))
    return Outcome(
        student, m.name, "graded", "; ".join(notes), cells, result.isolation, result.memory_mb
    ), merged


# -- 4. record -----------------------------------------------------------------------------


def record(course: Course, root: Path, m: Module, outcome: Outcome, notebook=None) -> None:
    """Write the outcome, the notebook for feedback, and the gradebook's automatic scores."""
    out = course.student_folder("autograded", m, outcome.student, root)
    if out.is_symlink():
        raise CourseError(f"{out} is a symbolic link, not a folder of autograded files")
    if (out / OUTCOME_FILE).is_dir():  # kept, not deleted: whatever it holds is somebody's
        (out / OUTCOME_FILE).rename(out / f"{OUTCOME_FILE}.folder-{os.getpid()}-{time.time_ns()}")
    kept = out / f"{m.notebook}.ipynb"
    if notebook is not None:
        write_if_changed(kept, dumps(notebook))
    elif kept.is_file() or kept.is_symlink():
        # From an earlier run: the feedback says why there is none now.
        kept.unlink()

    previous = load_outcome(course, root, m, outcome.student)
    final = {c.grade_id: c.score for c in outcome.cells}
    answers = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in (notebook.cells if notebook is not None else [])
        if is_grade(c)
    }
    # The old outcome goes first: killed before the new one is written, the submission reads
    # "not graded" (graded again, never exported) rather than an old status over new scores.
    if (out / OUTCOME_FILE).is_file():
        (out / OUTCOME_FILE).unlink()
    with gradebook(course, root) as gb:
        gb.update_or_create_student(outcome.student)
        try:
            gb.find_submission(m.name, outcome.student)
        except MissingEntry:
            gb.add_submission(m.name, outcome.student)
        for g in gb.find_submission_notebook(m.notebook, m.name, outcome.student).grades:
            if outcome.status == "failed":
                # No score at all, not 0: the grader or the machine failed, not the student.
                # Every cell waits for a new grade (or a person) until then.
                g.auto_score = None
            elif g.name in final:
                g.auto_score = final[g.name]
            elif g.name in answers and outcome.status == "graded":
                # A written answer: nbgrader's rule (None: it waits for a person).
                g.auto_score = determine_grade(answers[g.name])[0]
            else:
                g.auto_score = 0.0
            # A cell without a score waits for a person until one has scored it; a score
            # someone entered by hand (formgrader) is never touched, so a re-grade keeps it.
            reviewed = g.manual_score is not None and not g.needs_manual_grade
            g.needs_manual_grade = g.auto_score is None and g.manual_score is None
            if g.manual_score is not None:
                outcome.manual[g.name] = {
                    "score": g.manual_score,
                    "against": _scored_against(previous, g.name, g.manual_score, reviewed),
                }
                # Scored against another outcome: formgrader flags the cell for a look again
                # (the score stands until a person saves it, which clears the flag).
                g.needs_manual_grade = outcome.manual[g.name]["against"] != outcome.seen
        gb.db.commit()
    # Last: an outcome on disk always goes with the scores the gradebook holds for it.
    write_if_changed(out / OUTCOME_FILE, outcome.to_json())


def _scored_against(previous: Outcome | None, grade_id: str, score: float, reviewed: bool) -> str:
    """The `seen` digest of the outcome a score entered by hand was entered against: the one
    recorded before, unless it was entered, changed, or confirmed (formgrader's flag cleared)
    since then, which makes it the previous outcome's."""
    if previous is None:
        return ""
    kept = previous.manual.get(grade_id)
    if kept is None or kept["score"] != score or reviewed:
        return previous.seen
    return kept["against"]


def known_mistakes(mistakes: str, reference) -> dict[str, set[str]]:
    """Solution region -> the ids of its catalogued mistakes (what a job's diagnosis may name)."""
    if not mistakes:
        return {}
    regions = {
        c.metadata["nbgrader"]["grade_id"]
        for c in reference.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    out: dict[str, set[str]] = {r: set() for r in regions}
    for mistake in load(mistakes).mistakes:
        if mistake["region"] in out:
            out[mistake["region"]].add(str(mistake["id"]))
    return out


def checked_diagnosis(found, known: dict[str, set[str]]) -> dict[str, list[str]]:
    """The job's diagnosis, kept only in the shape a valid one has: known regions and known ids."""
    if not isinstance(found, dict):
        return {}
    return {
        region: sorted(i for i in set(ids) if i in known[region])
        for region, ids in found.items()
        if region in known and isinstance(ids, list) and all(isinstance(i, str) for i in ids)
    }


# -- the queue -------------------------------------------------------------------------------


def check_ready(course: Course, root: Path, m: Module) -> None:
    """Refuse at once when the module was never generated (no instructor notebook or gradebook
    entry)."""
    ref = course.source_notebook(m, root)
    hint = f"run `tito nbgrader generate {m.name}` first"
    if not ref.is_file():
        raise CourseError(f"no instructor notebook at {ref}: {hint}")
    with quiet(), gradebook(course, root) as gb:
        try:
            gb.find_assignment(m.name)
        except MissingEntry:
            raise CourseError(f"the gradebook has no assignment {m.name}: {hint}") from None


def autograde(
    course: Course,
    m: Module,
    students: list[str],
    workers: int | None = None,
    course_root: Path | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    jail: bool = True,
    scheduler: str | None = None,
    run_job: Callable[[Job], JobResult] | None = None,
    accept_unbounded_kernel_memory: bool = False,
) -> list[Outcome]:
    """Grade `students`' submissions of module `m`, `workers` at a time; every one gets an Outcome.

    Jobs run in processes of their own on this machine, or on the Dask cluster at `scheduler`
    (default: settings.ini's [grading] scheduler; "" for this machine). `workers` defaults
    to 1 here and to the cluster's threads there. `run_job` replaces how a job is run (a
    benchmark's variant). Without a control group for its jails (no root, no delegated group)
    on this machine or on any worker of the cluster, grading is refused before anything is
    written unless `accept_unbounded_kernel_memory` (jail.py says why); a worker that joins
    later in that state fails its jobs (the machine's problem: graded again).
    """
    root = Path(course_root or course.root).resolve()
    check_ready(course, root, m)
    scheduler = course.scheduler if scheduler is None else scheduler
    cluster = (
        Cluster(scheduler) if scheduler else None
    )  # unreachable: refused before anything is written
    run_job = run_job or (cluster.run if cluster else run_in_process)
    workers = workers or (cluster.threads if cluster else 1)
    if jail:
        if not accept_unbounded_kernel_memory:
            unbounded = (
                cluster.unbounded_workers()
                if cluster
                else ([] if jail_module.kernel_memory_bounded() else ["this machine"])
            )
            if unbounded:
                raise CourseError(f"{', '.join(unbounded)}: {jail_module.UNBOUNDED_KERNEL_MEMORY}")
        try:
            jail_module.check(course.grading)
        except jail_module.JailError as e:
            raise CourseError(
                f"{e}. Without a jail, submitted code can change any file the grading user "
                "can write; pass --unsafe-no-jail only for submissions you trust."
            ) from None
    instructor_text = course.source_notebook(m, root).read_text(encoding="utf-8")
    reference = nbformat.reads(instructor_text, as_version=4)
    package = student_package(course)
    tensor_class = course.package.tensor_class
    try:
        load_class(tensor_class)
    except (ValueError, ImportError, AttributeError) as e:
        raise CourseError(
            f"settings.ini [package] tensor_class {tensor_class!r} cannot be imported here: {e}"
        ) from None
    lock = threading.Lock()  # nbgrader's gradebook and folders: one writer at a time
    batch = uuid.uuid4().hex  # its jobs' warm processes are this run's (job.py)
    graded_by = grading_digests(course, m, root, jail)
    mistakes = m.mistakes.read_text(encoding="utf-8") if m.mistakes else ""
    known = known_mistakes(mistakes, reference)

    def grade(student: str) -> Outcome:
        """Every exception becomes this submission's `failed` outcome: the batch always goes on."""
        outcome, notebook = None, None
        try:
            outcome, notebook = _grade(student)
        except Exception as e:
            outcome = _failed(
                student,
                f"the grader failed on this submission ({type(e).__name__}: {str(e)[:200]})",
                outcome,
            )
        outcome.digests = {**graded_by, **outcome.digests}
        with lock:
            try:
                record(course, root, m, outcome, notebook)
            except Exception as e:  # this submission is not recorded; the batch goes on
                outcome = _failed(
                    student,
                    f"the outcome could not be recorded ({type(e).__name__}: {str(e)[:200]})",
                    outcome,
                )
        return outcome

    def _failed(student: str, reason: str, outcome: Outcome | None) -> Outcome:
        return Outcome(
            student,
            m.name,
            "failed",
            valid_text(reason),
            _cells(reference, reason, None),
            outcome.isolation if outcome else "",
            digests=outcome.digests if outcome else {},
        )

    def _grade(student: str) -> tuple[Outcome, nbformat.NotebookNode | None]:
        submitted = read_submission(course, root, m, student, reference)
        if isinstance(submitted, Outcome):
            return submitted, None
        submitted, received = submitted
        outcome, notebook = _grade_read(student, submitted)
        outcome.digests = {"submission": received}
        return outcome, notebook

    def _grade_read(student: str, submitted) -> tuple[Outcome, nbformat.NotebookNode | None]:
        with lock:  # nbgrader's gradebook: one writer at a time
            prepared = prepare(course, root, m, student, submitted, reference)
        if isinstance(prepared, Outcome):
            return prepared, None
        prepared, notes = prepared
        shown = for_display(prepared, reference, course.display_limits)
        # The kernel run gets no hidden test: the judge runs them from the instructor notebook.
        job = Job(
            student,
            m.name,
            dumps(without_hidden_tests(prepared)),
            instructor_text,
            package,
            tensor_class,
            asdict(course.grading),
            jail,
            mistakes,
            accept_unbounded_kernel_memory,
            batch,
        )
        result = run_job(job)
        try:
            outcome, notebook = decide(
                student, m, reference, shown, notes, result, course.display_limits
            )
            if outcome.status == "graded":
                outcome.diagnosis = checked_diagnosis(result.diagnosis, known)
            return outcome, notebook
        except (
            Exception
        ) as e:  # data the job returned that the host cannot use: this one fails, not the batch
            reason = f"the grading job returned unusable data ({type(e).__name__}: {str(e)[:200]})"
            return Outcome(
                student, m.name, "failed", reason, _cells(reference, reason, None), result.isolation
            ), None

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(grade, s): s for s in students}
            done = {}
            for f in as_completed(futures):
                done[futures[f]] = f.result()
                if on_done:
                    on_done(done[futures[f]])
    finally:
        close_warm_processes()
        if cluster:
            cluster.close()
    return [done[s] for s in students]
