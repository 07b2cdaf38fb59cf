"""What the hostile batches share: the cases, and the checks both batches must pass.

The Dask batch as root (test_hostile_submissions.py) and the command-line batch as an
unprivileged user (test_hostile_unprivileged.py) grade these cases and hold them to the same
rules. The attacks themselves are in hostile.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import site
import sys
import tempfile
from pathlib import Path

import nbformat

from tests import submissions as sub
from tests.conftest import REPO
from tests.grading import hostile
from tito.course.grading import display, scores
from tito.course.settings import Course

HONEST = "complete"

# Student cells that try to make failing tests pass inside the kernel.
FORGE_NUMPY = """\
import builtins
import numpy as np
np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, *r, **k: np.ones(np.broadcast(a, b).shape, bool)
np.testing.assert_allclose = lambda *a, **k: None
np.testing.assert_array_equal = lambda *a, **k: None
np.array_equal = lambda *a, **k: True
builtins.AssertionError = type("AssertionError", (Exception,), {})
AssertionError = builtins.AssertionError
"""
FORGE_TRACEBACKS = """\
from IPython import get_ipython
ip = get_ipython()
ip.showtraceback = lambda *a, **k: None
ip.set_custom_exc((BaseException,), lambda shell, etype, value, tb, tb_offset=None: None)
"""
IMPORT_REFERENCE = """\
import tinytorch.core.optimizers as reference
reference.adam_step(param, grad, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                    weight_decay=weight_decay, scratch=scratch)
"""
LOOP_FOREVER = "while True:\n    pass"
EAT_MEMORY = "import numpy as np\nhog = []\nwhile True:\n    hog.append(np.ones(50_000_000))"


def notebooks(course: Course):
    m = course.module("06")
    release = nbformat.read(course.release_notebook(m), as_version=4)
    instructor = nbformat.read(course.source_notebook(m), as_version=4)
    return m, release, instructor, sub.filled(release, instructor)


def hostile_cases(course: Course, tmpdir: Path) -> dict:
    """Submissions whose code attacks the grader; none of them but `broadcasts` has done the
    work."""
    m, release, instructor, complete = notebooks(course)
    root = course.root
    return {
        "plants_code": hostile.with_attack(release, hostile.plants_code(REPO, root)),
        "writes_course": hostile.with_attack(
            release, hostile.writes_course(root, course.source_notebook(m), HONEST, tmpdir)
        ),
        "lingers": hostile.with_attack(release, hostile.lingers(root, HONEST)),
        "loopback": hostile.loopback(release, instructor),
        "reads_files": hostile.reads_files(
            release,
            [
                root / "submitted" / HONEST / m.name / f"{m.notebook}.ipynb",
                course.source_notebook(m),
            ],
        ),
        "signals": hostile.with_attack(release, hostile.signals_everyone()),
        # What a submission uses of the machine: kernel objects, CPU and memory, the judge's trust.
        "kernel_state": hostile.with_attack(release, hostile.kernel_state()),
        "hogs_cpu": hostile.with_attack(release, hostile.hogs_cpu(HOG_SECONDS), kernel_only=True),
        HOARD: hostile.with_attack(release, hostile.hoards_memory(4, 900), kernel_only=True),
        # (the only one with work done: the rest of the complete solution)
        "broadcasts": sub.replace_region(
            complete, "cosine_annealing_lr_impl", "return np.ones((20_000_000, 1))"
        ),
    }


# Its processes end with its own kernel run at the latest; meanwhile they compete with the jobs
# running beside it.
HOG_SECONDS = 6
# Jobs start in the order of the students' names. The hoard needs CPU to touch its memory within
# its cell's time limit, and without root nothing caps the hog: the hoard's name puts it late in the
# queue, after the hog's job has ended, where "hoards_memory" would start next to "hogs_cpu".
HOARD = "uses_memory"
DENIED = {
    name: "EPERM"
    for name in [
        "add_key",
        "keyctl_search",
        "io_uring_setup",
        "memfd_create",
        "shmget",
        "flock",
        "F_NOTIFY",
        "F_SETLEASE",
        "F_SETSIG",
    ]
}


def check_resources(course: Course, outcomes: dict, keys_before: set, keys_after: set) -> None:
    """What the resource cases must show, as root or not: kernel state denied and nothing left in
    the keyrings, the memory hoard stopped and recorded, the CPU hog running, a broadcast
    refused."""
    assert printed(course, "kernel_state", "kernel state: ") == [DENIED]
    assert keys_after == keys_before
    hoard = outcomes[HOARD]
    assert (
        hoard.status == "graded" and "the kernel run held more than memory_limit_mb" in hoard.reason
    ), hoard
    assert printed(course, HOARD, "memfd: ") in (
        [1],
        [],
    )  # EPERM (none if the kernel was stopped)
    assert all(n < 4 for n in printed(course, HOARD, "processes that held their memory: "))
    assert printed(course, "hogs_cpu", "busy processes: ")[0] >= 30
    for grade_id in ("cosine_annealing_values", "cosine_annealing_beyond_t_max"):
        message = cell_of(outcomes["broadcasts"], grade_id).message
        assert "a valid one can need" in message and "160000" in message, message


REAPS_CHILDREN = "reaps_children"


def check_reaped_children(outcome, recorded, full: float) -> None:
    """A judged function that keeps its CPU in children it forks and reaps timed out: its cell
    scores 0 and the submission keeps the rest (graded, never failed: the machine gave it its
    CPU, the loop was its own). `recorded`: its scores in the gradebook (scores.read)."""
    assert (outcome.status, outcome.reason) == ("graded", ""), outcome
    cell = cell_of(outcome, "exponential_lr_values")
    assert (cell.judge, cell.message) == (
        False,
        "StudentError: exponential_lr() did not return within the time limit",
    ), cell
    assert [c.grade_id for c in outcome.cells if c.judge is False] == ["exponential_lr_values"]
    assert recorded.automatic == full - cell.max_score


def recorded_scores(course: Course, students) -> dict:
    """The gradebook's scores (scores.read), from a copy: a course graded by the unprivileged user
    is its, and a test process writes nothing of it."""
    snapshot = Path(tempfile.mkdtemp(prefix="tito-gradebook-"))
    try:
        shutil.copy(course.root / "gradebook.db", snapshot / "gradebook.db")
        return scores.read(course, course.module("06"), list(students), snapshot)
    finally:
        shutil.rmtree(snapshot)


def check_attack_cells(outcomes: dict, recorded: dict, attacks) -> None:
    """The rule both batches (Dask as root, command line unprivileged) must follow cell by cell:
    an attack built on the untouched student version passes no cell in the judge, and the
    gradebook (`recorded`, scores.read) gives it no automatic point."""
    for student in set(attacks) - {"broadcasts"}:
        s = recorded[student]
        scored = [(g, p) for g, p in s.points.items() if p and g not in s.written]
        assert (scored, [c.grade_id for c in outcomes[student].cells if c.judge]) == ([], []), (
            student
        )


def keyring() -> set[str]:
    """The keys this user can see (/proc/keys)."""
    return (
        set(Path("/proc/keys").read_text().splitlines()) if Path("/proc/keys").exists() else set()
    )


def hidden_lines(instructor) -> list[str]:
    """Every line of a hidden test region that appears nowhere else in the instructor notebook."""
    visible = "\n".join(c.source for c in display.without_hidden_tests(instructor).cells)
    lines = []
    for cell in instructor.cells:
        inside = False
        for line in cell.source.split("\n"):
            inside = (inside or display.HIDDEN_BEGIN in line) and display.HIDDEN_END not in line
            if (
                inside
                and display.HIDDEN_BEGIN not in line
                and len(line.strip()) >= 12
                and line.strip() not in visible
            ):
                lines.append(line.strip())
    return lines


# What a submission says (markup, floods, odd characters, too many cells): display cases, with
# the score each must get (the complete solution's when its code is the complete solution).
DISPLAY_SCORES = {
    "scripted": "full",
    "floods": "full",
    "lone_surrogate": 0.0,
    "prints_inputs": 0.0,
    "bad_metadata": 0.0,
    "many_cells": 0.0,
    "echoes_hidden_inputs": "full-2",  # the two hidden trajectory cells of Adam and AdamW
    "listens_in_diagnosis": "full-8",  # clip_grad_norm's five cells, clipping per tensor
}


def display_cases(release, instructor, complete) -> dict:
    return {
        "scripted": hostile.scripted(complete),
        "floods": hostile.floods(complete),
        "lone_surrogate": hostile.lone_surrogate(complete),
        "bad_metadata": hostile.bad_metadata(complete),
        "prints_inputs": hostile.prints_inputs(release, hidden_lines(instructor)),
        "many_cells": hostile.many_cells(release),
        "echoes_hidden_inputs": hostile.echoes_hidden_inputs(complete),
        "listens_in_diagnosis": hostile.listens_in_diagnosis(complete, _mistake_code()),
    }


def _mistake_code() -> dict[str, str]:
    """Each known mistake's code, by id (modules/06_optimizers/mistakes.yaml)."""
    import yaml

    text = Course().module("06").mistakes.read_text(encoding="utf-8")
    return {x["id"]: x["code"] for x in yaml.safe_load(text)["mistakes"]}


def place(course: Course, cases: dict, not_files: bool = True) -> dict[str, Path]:
    """Write each case to submitted/; with `not_files`, add the three that are no regular file."""
    m = course.module("06")
    paths = {}
    for student, content in cases.items():
        path = course.root / "submitted" / student / m.name / f"{m.notebook}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            nbformat.write(content, path)
        paths[student] = path
    if not not_files:
        return paths
    # A submission that is a link to the instructor notebook, one that is a folder, and a named
    # pipe (opening it to read would wait for a writer forever).
    for student in ("symlinked", "foldered", "piped"):
        paths[student] = course.root / "submitted" / student / m.name / f"{m.notebook}.ipynb"
        paths[student].parent.mkdir(parents=True)
    paths["symlinked"].symlink_to(course.source_notebook(m))
    paths["foldered"].mkdir()
    os.mkfifo(paths["piped"])
    return paths


# -- what must not change ------------------------------------------------------------------


def _hashes(root: Path, skip=()) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not p.is_symlink()
        and not p.relative_to(root).as_posix().startswith(skip)
    }


def _environment() -> dict[str, tuple]:
    """Size and modification time of every file of the Python environment and the checkout's
    code."""
    out = {}
    for top in [
        Path(site.getsitepackages()[0]),
        Path(sys.prefix) / "bin",
        REPO / "tito",
        REPO / "tinytorch",
    ]:
        for folder, _, files in os.walk(top):
            for f in files:
                st = os.lstat(os.path.join(folder, f))
                out[os.path.join(folder, f)] = (st.st_size, st.st_mtime_ns)
    return out


def snapshot(course: Course, tmpdir: Path) -> dict:
    return {
        "course": _hashes(course.root, skip=("autograded/", "gradebook.db", "feedback/")),
        "environment": _environment(),
        "tmp": sorted(p.name for p in tmpdir.iterdir()),
    }


def processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = (
                Path(f"/proc/{pid}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except OSError:
            continue
        if marker in cmdline:
            found.append(cmdline)
    return found


def full_score(instructor) -> float:
    return sum(
        float(c.metadata["nbgrader"]["points"])
        for c in instructor.cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    )


def cell_of(outcome, grade_id):
    return next(c for c in outcome.cells if c.grade_id == grade_id)


def printed(course: Course, student: str, prefix: str) -> list:
    """What a cell printed after `prefix` on a line (JSON: a number, or data), from the notebook
    kept for feedback."""
    nb = nbformat.read(
        course.root / "autograded" / student / "06_optimizers" / "optimizers.ipynb", as_version=4
    )
    return [
        json.loads(line.split(prefix, 1)[1])
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.get("name") == "stdout"
        for line in o.text.splitlines()
        if line.startswith(prefix)
    ]


# -- what a submission says: display, hidden tests, floods, odd characters -----------------------


def autograded_notebook(course: Course, student: str):
    """The notebook kept for display (what formgrader and the feedback page render) and its size."""
    path = course.root / "autograded" / student / "06_optimizers" / "optimizers.ipynb"
    return nbformat.read(path, as_version=4), path.stat().st_size


def unsafe_markup(page: str) -> list:
    """Tags and attributes of an HTML fragment that could run script, style or fetch anything."""
    from html.parser import HTMLParser

    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in (
                "script",
                "iframe",
                "svg",
                "style",
                "object",
                "embed",
                "link",
                "meta",
                "base",
                "form",
            ):
                found.append(tag)
            for name, value in attrs:
                if (
                    name.startswith("on")
                    or name in ("style", "class", "id")
                    and tag != "div"
                    or name in ("href", "src")
                    and not re.match(r"(https?:|mailto:|data:image/(png|jpeg);)", value or "")
                ):
                    found.append(f"{tag} {name}={value!r}")

    Parser().feed(page)
    return found


def check_display(course: Course, outcomes: dict, full: float) -> None:
    """The display cases of a batch (root or unprivileged): scores, caps, and nothing kept
    unsafe."""
    recorded = recorded_scores(course, [s for s in DISPLAY_SCORES if s in outcomes])
    for student, expected in DISPLAY_SCORES.items():
        if student not in outcomes:
            continue
        expected = {"full": full, "full-2": full - 2, "full-8": full - 8}.get(expected, expected)
        assert recorded[student].automatic == expected, (
            student,
            outcomes[student],
        )
    assert (outcomes["many_cells"].status, outcomes["many_cells"].reason) == (
        "invalid",
        "the notebook has "
        f"{len(nbformat.read(course.release_notebook(course.module('06')), 4).cells) + 60_000:,}"
        " cells, more "
        "than the 1,000 a submission may have (max_cells in settings.ini): "
        "start again from the student version",
    )
    appended = len(
        nbformat.read(course.release_notebook(course.module("06")), 4).cells
    )  # the cell after the last
    assert (outcomes["lone_surrogate"].status, outcomes["lone_surrogate"].reason) == (
        "invalid",
        f"the notebook is not valid Unicode: cell {appended} (lone-surrogate) "
        "holds a lone surrogate "
        "(\\udXXX), text that Jupyter cannot save; remove it and hand the notebook in again",
    )
    assert (outcomes["bad_metadata"].status, outcomes["bad_metadata"].reason) == (
        "invalid",
        f"cell {appended} (odd) has nbgrader metadata of the wrong shape: "
        "start again from the student "
        "version, or copy your answers into it",
    )
    if "floods" in outcomes:
        floods, size = autograded_notebook(course, "floods")
        outputs = [o.get("text") for c in floods.cells if c.cell_type == "code" for o in c.outputs]
        assert (
            "x" * 20_000 + "\n… [39,980,001 more characters not shown (max_output_chars)]"
            in outputs
        )
        assert "… 900 more outputs not shown (max_outputs_per_cell)" in outputs
        assert size < 1 << 20
    said = [
        line
        for c in autograded_notebook(course, "prints_inputs")[0].cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.get("name") == "stdout"
        for line in o.text.splitlines()
    ]
    assert "hidden lines seen: 0" in said
    assert any(line.startswith("read: ") and "/job/in/submission.ipynb" in line for line in said), (
        said
    )
    instructor = nbformat.read(course.source_notebook(course.module("06")), as_version=4)
    hidden = hidden_lines(instructor)
    # What the judge handed a submission in a hidden check stays in the judge: the option sets
    # echoes_hidden_inputs raises are in no outcome and in no comment of the gradebook.
    secrets = hostile.hidden_option_sets(instructor)
    assert secrets == ["'dampening': 0.3"]
    echoed = [
        (f.parent.parent.name, s)
        for f in (course.root / "autograded").glob("*/06_optimizers/grading.json")
        for s in secrets
        if s in f.read_text(encoding="utf-8")
    ]
    assert echoed == []
    # The diagnosis hands the student's process nothing the reference computed: its adam_step
    # hears only its own probe's 36 calls, so its clip_grad_norm behaves like clipping per tensor.
    assert outcomes["listens_in_diagnosis"].diagnosis == {
        "clip_grad_norm_impl": ["clip-per-tensor"]
    }
    assert [s for s in secrets if s in gradebook_text(course)] == []
    for folder in sorted((course.root / "autograded").glob("*/06_optimizers")):
        if not (folder / "optimizers.ipynb").is_file():
            continue
        nb, _ = autograded_notebook(course, folder.parent.name)
        text = nbformat.writes(nb)
        assert [h for h in hidden if h in text] == [], folder.parent.name
        assert nb.metadata == instructor.metadata
        for cell in nb.cells:
            if cell.cell_type == "raw":  # shown by no page
                assert cell.metadata == {"raw_mimetype": "text/plain"}
                continue
            assert set(cell.metadata) <= {"nbgrader"} and "attachments" not in cell
            if cell.cell_type == "markdown":
                assert unsafe_markup(cell.source) == [], cell.source


def gradebook_text(course: Course) -> str:
    """Every comment and grade the gradebook holds, as text (read from a copy)."""
    import sqlite3

    snapshot = Path(tempfile.mkdtemp(prefix="tito-gradebook-"))
    try:
        shutil.copy(course.root / "gradebook.db", snapshot / "gradebook.db")
        with sqlite3.connect(snapshot / "gradebook.db") as db:
            rows = db.execute("SELECT auto_comment, manual_comment FROM comment").fetchall()
        return "\n".join(str(x) for row in rows for x in row if x)
    finally:
        shutil.rmtree(snapshot)
