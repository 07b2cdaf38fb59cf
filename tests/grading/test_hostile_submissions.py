"""Hostile and broken submissions through the real pipeline (jailed kernel run + judge).

One batch grades them all on a Dask cluster next to an honest classmate; each test then
checks one guarantee. The same attacks run again through `tito nbgrader autograde` as an
unprivileged user in test_hostile_unprivileged.py. The attacks themselves are in hostile.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import site
import sys
import tempfile
import re
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO
from tests.grading import hostile
from tests.grading.dask_cluster import local_cluster
from tito.course.grading import display, scores, submissions as sub
from tito.course.grading.examples import EPS_INSIDE_SQRT
from tito.course.grading.host import autograde
from tito.course.grading.report import score_rows
from tito.course.settings import Course

pytestmark = pytest.mark.slow
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
    """Submissions whose code attacks the grader; none of them but `broadcasts` has done the work."""
    m, release, instructor, complete = notebooks(course)
    root = course.root
    return {
        "plants_code": hostile.with_attack(release, hostile.plants_code(REPO, root)),
        "writes_course": hostile.with_attack(release, hostile.writes_course(root, course.source_notebook(m), HONEST,
                                                                            tmpdir)),
        "lingers": hostile.with_attack(release, hostile.lingers(root, HONEST)),
        "loopback": hostile.loopback(release, instructor),
        "reads_files": hostile.reads_files(release, [
            root / "submitted" / HONEST / m.name / f"{m.notebook}.ipynb", course.source_notebook(m)]),
        "signals": hostile.with_attack(release, hostile.signals_everyone()),
        # What a submission uses of the machine: kernel objects, CPU and memory, the judge's trust.
        "kernel_state": hostile.with_attack(release, hostile.kernel_state()),
        "hogs_cpu": hostile.with_attack(release, hostile.hogs_cpu(HOG_SECONDS), kernel_only=True),
        HOARD: hostile.with_attack(release, hostile.hoards_memory(4, 900), kernel_only=True),
        # (the only one with work done: the rest of the complete solution)
        "broadcasts": sub.replace_region(complete, "cosine_annealing_lr_impl", "return np.ones((20_000_000, 1))"),
    }


HOG_SECONDS = 25  # long enough to overlap other jobs of the batch
# Jobs start in the order of the students' names. The hoard needs CPU to touch its memory within
# its cell's time limit, and without root nothing caps the hog: the hoard's name puts it late in the
# queue, after the hog's job has ended, where "hoards_memory" would start next to "hogs_cpu".
HOARD = "uses_memory"
DENIED = {name: "EPERM" for name in ["add_key", "keyctl_search", "io_uring_setup", "memfd_create", "shmget", "flock"]}


def check_resources(course: Course, outcomes: dict, keys_before: set, keys_after: set) -> None:
    """What the resource cases must show, as root or not: kernel state denied and nothing left in
    the keyrings, the memory hoard stopped and recorded, the CPU hog running, a broadcast refused."""
    assert _printed_json(course, "kernel_state", "kernel state: ") == [DENIED]
    assert keys_after == keys_before
    hoard = outcomes[HOARD]
    assert hoard.status == "graded" and "the kernel run held more than memory_limit_mb" in hoard.reason, hoard
    assert _printed(course, HOARD, "memfd: ") in ([1], [])  # EPERM (none if the kernel was stopped)
    assert all(n < 4 for n in _printed(course, HOARD, "processes that held their memory: "))
    assert _printed(course, "hogs_cpu", "busy processes: ")[0] >= 30
    for grade_id in ("cosine_annealing_values", "cosine_annealing_beyond_t_max"):
        message = _cell(outcomes["broadcasts"], grade_id).message
        assert "a valid one can need" in message and "160000" in message, message


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
        assert (scored, [c.grade_id for c in outcomes[student].cells if c.judge]) == ([], []), student


def keyring() -> set[str]:
    """The keys this user can see (/proc/keys)."""
    return set(Path("/proc/keys").read_text().splitlines()) if Path("/proc/keys").exists() else set()


def hidden_lines(instructor) -> list[str]:
    """Every line of a hidden test region that appears nowhere else in the instructor notebook."""
    visible = "\n".join(c.source for c in display.without_hidden_tests(instructor).cells)
    lines = []
    for cell in instructor.cells:
        inside = False
        for line in cell.source.split("\n"):
            inside = (inside or display.HIDDEN_BEGIN in line) and display.HIDDEN_END not in line
            if inside and display.HIDDEN_BEGIN not in line and len(line.strip()) >= 12 and line.strip() not in visible:
                lines.append(line.strip())
    return lines


# What a submission says (markup, floods, odd characters, too many cells): display cases, with
# the score each must get (the complete solution's when its code is the complete solution).
DISPLAY_SCORES = {"scripted": "full", "floods": "full", "lone_surrogate": 0.0, "prints_inputs": 0.0, "bad_metadata": 0.0,
                  "many_cells": 0.0}


def display_cases(release, instructor, complete) -> dict:
    return {"scripted": hostile.scripted(complete), "floods": hostile.floods(complete),
            "lone_surrogate": hostile.lone_surrogate(complete), "bad_metadata": hostile.bad_metadata(complete),
            "prints_inputs": hostile.prints_inputs(release, hidden_lines(instructor)),
            "many_cells": hostile.many_cells(release)}


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
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
            and not p.relative_to(root).as_posix().startswith(skip)}


def _environment() -> dict[str, tuple]:
    """Size and modification time of every file of the Python environment and the checkout's code."""
    out = {}
    for top in [Path(site.getsitepackages()[0]), Path(sys.prefix) / "bin", REPO / "tito", REPO / "tinytorch"]:
        for folder, _, files in os.walk(top):
            for f in files:
                st = os.lstat(os.path.join(folder, f))
                out[os.path.join(folder, f)] = (st.st_size, st.st_mtime_ns)
    return out


def snapshot(course: Course, tmpdir: Path) -> dict:
    return {"course": _hashes(course.root, skip=("autograded/", "gradebook.db", "feedback/")),
            "environment": _environment(), "tmp": sorted(p.name for p in tmpdir.iterdir())}


def processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(cmdline)
    return found


def full_score(instructor) -> float:
    return sum(float(c.metadata["nbgrader"]["points"]) for c in instructor.cells
               if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code")


def _cell(outcome, grade_id):
    return next(c for c in outcome.cells if c.grade_id == grade_id)


def _printed_json(course: Course, student: str, prefix: str) -> list:
    nb = nbformat.read(course.root / "autograded" / student / "06_optimizers" / "optimizers.ipynb", as_version=4)
    return [json.loads(line.split(prefix, 1)[1]) for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.get("name") == "stdout" for line in o.text.splitlines() if line.startswith(prefix)]


def _printed(course: Course, student: str, prefix: str) -> list[int]:
    """Numbers a cell printed after `prefix`, from the notebook kept for feedback."""
    nb = nbformat.read(course.root / "autograded" / student / "06_optimizers" / "optimizers.ipynb", as_version=4)
    return [int(line.split(prefix)[1]) for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.get("name") == "stdout" for line in o.text.splitlines() if line.startswith(prefix)]


# -- the batch as root (or as the current user) ---------------------------------------------

@pytest.fixture(scope="module")
def batch(graded_course, tmp_path_factory):
    course = graded_course
    m, release, instructor, complete = notebooks(course)
    tmpdir = tmp_path_factory.mktemp("grading-tmp")
    buggy = sub.replace_region(complete, "adam_step_impl", EPS_INSIDE_SQRT)
    old_minor = sub.filled(release, instructor)
    old_minor.nbformat_minor = 4
    for c in old_minor.cells:
        c.pop("id", None)
    cases = {
        HONEST: complete,
        "untouched": release,
        "buggy": buggy,
        "not_json": b'{"cells": [ this is not json',
        "old_minor_version": old_minor,
        "deleted_grade_cell": sub.without_cell(buggy, "adam_eps_outside_sqrt"),
        "all_grade_cells_deleted": hostile.without_grade_cells(complete),
        "duplicated_grade_cell": sub.with_duplicate(buggy, "adam_eps_outside_sqrt", '"""forged"""\npass'),
        "edited_locked_cell": sub.set_source(buggy, "adam_eps_outside_sqrt", '"""adam eps"""\npass'),
        "forged_numpy": sub.insert_code_cell(buggy, None, FORGE_NUMPY),
        "forged_tracebacks": sub.insert_code_cell(buggy, None, FORGE_TRACEBACKS),
        "forged_in_export_cell": sub.insert_code_cell(buggy, None, "#| export\n" + FORGE_NUMPY),
        "imports_reference": sub.replace_region(complete, "adam_step_impl", IMPORT_REFERENCE),
        "loops_forever": sub.insert_code_cell(complete, "adam_step_impl", LOOP_FOREVER),
        "eats_memory": sub.insert_code_cell(complete, "adam_step_impl", "#| export\n" + EAT_MEMORY),
        "calls_sys_exit": sub.insert_code_cell(complete, "adam_step_impl", "import sys\nsys.exit(3)"),
        "calls_os_exit": sub.insert_code_cell(complete, "adam_step_impl", "import os\nos._exit(0)"),
        "counts_limits": hostile.with_attack(hostile.with_attack(complete, hostile.counts_limits(), kernel_only=True),
                                             hostile.reads_proc_count(), kernel_only=True),
        "outcome_folder": complete,
        "invalid_over_outcome_folder": b"not a notebook",
        **(attacks := hostile_cases(course, tmpdir)),
        # The 40 MB flood runs in test_display_hostile.py's batch only (it costs time, not coverage).
        **{s: c for s, c in display_cases(release, instructor, complete).items() if s != "floods"},
    }
    paths = place(course, cases)
    for student in ("outcome_folder", "invalid_over_outcome_folder"):
        (course.root / "autograded" / student / m.name / "grading.json" / "kept.txt").mkdir(parents=True)
    submitted = {s: p.read_bytes() for s, p in paths.items() if p.is_file() and not p.is_symlink()}
    # Graded on a Dask cluster of three workers, one of which is killed (SIGKILL) once the
    # first outcome is in, while the others' jobs run: its jobs are run again elsewhere.
    with local_cluster(tmp_path_factory.mktemp("dask"), workers=3, env={"TMPDIR": str(tmpdir)}) as (address, workers):
        killed = []

        def kill_a_worker(outcome):
            if not killed:
                killed.append(outcome.student)
                os.kill(workers[0].pid, signal.SIGKILL)

        before, keys_before = snapshot(course, tmpdir), keyring()
        outcomes = autograde(course, m, sorted(paths), scheduler=address, on_done=kill_a_worker)
        killed_status = workers[0].wait(timeout=10)
    lingering = processes_with(hostile.MARKER)
    after = snapshot(course, tmpdir)
    return dict(course=course, outcomes={o.student: o for o in outcomes}, recorded=[o.student for o in outcomes],
                before=before, after=after, paths=paths, submitted=submitted, full=full_score(instructor),
                lingering=lingering, killed_status=killed_status, keys=(keys_before, keyring()), attacks=list(attacks))


def test_every_submission_gets_exactly_one_outcome_though_a_worker_was_killed(batch):
    assert batch["killed_status"] == -signal.SIGKILL
    assert sorted(batch["recorded"]) == sorted(batch["paths"])
    from nbgrader.api import Gradebook

    course = batch["course"]
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", course.course_id) as gb:
        # The course is shared with other test files: look at this batch's students only.
        rows = sorted((s.student.id, len(s.notebooks), s.score) for s in gb.find_assignment("06_optimizers").submissions
                      if s.student.id in batch["outcomes"])
    assert rows == sorted((s, 1, o.score) for s, o in batch["outcomes"].items())


def test_every_submission_gets_a_recorded_outcome(batch):
    assert sorted(batch["outcomes"]) == sorted(batch["paths"])
    for student, o in batch["outcomes"].items():
        saved = batch["course"].root / "autograded" / student / "06_optimizers" / "grading.json"
        # what grading alone knows; the scores are in the gradebook (the test above)
        kept = json.loads(saved.read_text())
        assert kept["status"] == o.status and "score" not in kept and all("score" not in c for c in kept["cells"])
    # Every submission whose code ran, ran jailed; the others record that nothing ran.
    ran = {o.isolation for o in batch["outcomes"].values() if any(c.kernel is not None for c in o.cells)}
    assert ran == ({"bubblewrap, seccomp, cgroup (2500 MB in all, 1 CPU)"} if os.geteuid() == 0 else
                   {"bubblewrap, seccomp, memory watch (2500 MB in all), no CPU quota"})
    assert {o.isolation for o in batch["outcomes"].values() if o.status == "invalid"} == {""}


def test_the_honest_classmate_keeps_full_marks_and_untouched_scores_zero(batch):
    o = batch["outcomes"]
    assert (o[HONEST].status, o[HONEST].score, o[HONEST].max_score) == ("graded", batch["full"], batch["full"])
    assert (o["untouched"].status, o["untouched"].score) == ("graded", 0.0)


@pytest.mark.parametrize("student", ["plants_code", "writes_course", "lingers", "loopback", "reads_files", "signals"])
def test_an_attack_on_the_grader_gains_nothing(batch, student):
    o = batch["outcomes"][student]
    assert o.score == 0.0, [(c.grade_id, c.score) for c in o.cells if c.score]
    assert all(c.judge is not True for c in o.cells)


def test_code_fetched_over_loopback_passes_in_the_kernel_but_not_in_the_judge(batch):
    """The kernel stage serves working code to itself; the judge's process cannot reach it."""
    cells = batch["outcomes"]["loopback"].cells
    assert sum(c.kernel for c in cells) == batch["full"]
    assert [c.grade_id for c in cells if c.judge] == []


def test_killing_every_visible_process_only_ends_the_attackers_own_kernel_run(batch):
    o = batch["outcomes"]["signals"]
    assert (o.status, o.score) == ("failed", 0.0)
    assert "no readable notebook" in o.reason


def test_what_a_submission_uses_stays_within_its_own_job(batch):
    """Kernel objects denied, memory bounded for all processes together, a CPU hog capped at one
    CPU (the honest classmate, graded meanwhile, keeps full marks), a broadcast reply refused."""
    check_resources(batch["course"], batch["outcomes"], *batch["keys"])
    if os.geteuid() == 0:  # the control group's own peak: never above the limit
        assert 0 < batch["outcomes"][HOARD].memory_mb["kernel"] <= 2500


def test_every_attack_scores_nothing_in_any_cell(batch):
    check_attack_cells(batch["outcomes"], recorded_scores(batch["course"], batch["outcomes"]), batch["attacks"])


def test_no_process_outlives_its_job(batch):
    assert batch["lingering"] == []


def test_no_file_outside_the_jobs_outputs_changes(batch):
    before, after = batch["before"], batch["after"]
    assert {k for k in before["course"].keys() | after["course"].keys()
            if before["course"].get(k) != after["course"].get(k)} == set()
    assert {k for k in before["environment"].keys() | after["environment"].keys()
            if before["environment"].get(k) != after["environment"].get(k)} == set()
    assert after["tmp"] == before["tmp"] == []  # each job's folder is gone, nothing planted
    assert not Path("/tmp/tito-hostile").exists()
    for s, data in batch["submitted"].items():
        assert batch["paths"][s].read_bytes() == data


def test_limits_hold_inside_the_jail(batch):
    course = batch["course"]
    limits = course.grading_limits
    assert batch["outcomes"]["counts_limits"].score == batch["full"]  # honest work still counts
    (forked,) = _printed(course, "counts_limits", "forked: ")
    (scratch,) = _printed(course, "counts_limits", "scratch MB: ")
    (visible,) = _printed(course, "counts_limits", "visible processes: ")
    assert 0 < forked < limits["max_processes"]
    assert scratch < limits["scratch_mb"]
    assert visible <= 3  # bubblewrap's init, the notebook runner, the kernel


@pytest.mark.parametrize("student", ["symlinked", "foldered", "piped"])
def test_a_submission_that_is_no_regular_file_is_invalid(batch, student):
    o = batch["outcomes"][student]
    assert (o.status, o.score, o.max_score) == ("invalid", 0.0, batch["full"])
    expected = "not a regular file: " + {"symlinked": "a symbolic link", "foldered": "a folder",
                                         "piped": "a named pipe"}[student]
    assert o.reason == f"the submission cannot be read: {expected}"


def test_an_outcome_path_that_is_a_folder_is_replaced_by_the_outcome(batch):
    assert batch["outcomes"]["outcome_folder"].score == batch["full"]
    # Where nbgrader did not clear the folder first, the folder is moved aside, not deleted.
    out = batch["course"].root / "autograded" / "invalid_over_outcome_folder" / "06_optimizers"
    assert json.loads((out / "grading.json").read_text())["status"] == "invalid"
    assert [p.name for p in out.glob("grading.json.folder-*/kept.txt")] == ["kept.txt"]


def test_a_report_survives_an_outcome_that_cannot_be_read(batch):
    course = batch["course"]
    m = course.module("06")
    ghost = course.root / "autograded" / "ghost" / m.name / "grading.json"
    ghost.mkdir(parents=True)
    (course.root / "submitted" / "ghost" / m.name).mkdir(parents=True)
    try:
        _, rows = score_rows(course, m)
    finally:
        ghost.rmdir()
        (course.root / "submitted" / "ghost" / m.name).rmdir()
    row = next(r for r in rows if r["student"] == "ghost")
    assert (row["status"], row["total"]) == ("not graded", 0.0)
    assert next(r for r in rows if r["student"] == HONEST)["total"] == batch["full"]


def test_a_submission_without_any_test_cell_fails_with_nbgraders_own_error(batch):
    """nbgrader cannot restore the test cells of a notebook that lost all of them; its real error is kept."""
    o = batch["outcomes"]["all_grade_cells_deleted"]
    assert (o.status, o.score) == ("failed", 0.0)
    assert o.reason == "nbgrader could not prepare the submission: KeyError: 'sgd_class'"


def test_a_realistic_bug_loses_exactly_the_cells_that_test_it(batch):
    buggy = batch["outcomes"]["buggy"]
    assert 0 < buggy.score < batch["full"]
    assert _cell(buggy, "adam_eps_outside_sqrt").score == 0.0


def test_a_file_that_is_not_json_is_recorded_as_invalid_with_zero(batch):
    o = batch["outcomes"]["not_json"]
    assert (o.status, o.score) == ("invalid", 0.0)
    assert o.reason.startswith("not a valid notebook")
    assert o.max_score == batch["full"]


def test_a_notebook_from_an_older_nbformat_minor_version_is_graded_normally(batch):
    o = batch["outcomes"]["old_minor_version"]
    assert (o.status, o.score) == ("graded", batch["full"])


@pytest.mark.parametrize("student", ["deleted_grade_cell", "duplicated_grade_cell", "edited_locked_cell"])
def test_tampering_with_a_test_cell_does_not_rescue_a_bug(batch, student):
    o, buggy = batch["outcomes"][student], batch["outcomes"]["buggy"]
    assert o.status == "graded"
    assert _cell(o, "adam_eps_outside_sqrt").score == 0.0
    assert [(c.grade_id, c.score) for c in o.cells] == [(c.grade_id, c.score) for c in buggy.cells]
    if student == "duplicated_grade_cell":
        assert "duplicated cell 'adam_eps_outside_sqrt': one copy graded" in o.reason


def test_deleted_grade_cell_is_restored_by_nbgrader_and_run(batch):
    graded = batch["course"].root / "autograded/deleted_grade_cell/06_optimizers/optimizers.ipynb"
    nb = nbformat.read(graded, as_version=4)
    restored = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "adam_eps_outside_sqrt"]
    assert len(restored) == 1
    assert any(o.get("output_type") == "error" for o in restored[0].outputs)


@pytest.mark.parametrize("student", ["forged_numpy", "forged_tracebacks", "forged_in_export_cell"])
def test_forging_the_checks_in_the_kernel_earns_nothing(batch, student):
    o, buggy = batch["outcomes"][student], batch["outcomes"]["buggy"]
    # No cell scores more than the same bug without the forgery (breaking numpy may cost more).
    assert all(c.score <= b.score for c, b in zip(o.cells, buggy.cells))
    assert o.score <= buggy.score < batch["full"]
    # The judge, not the kernel, decided the cells the bug fails.
    assert _cell(o, "adam_eps_outside_sqrt").judge is False


def test_the_reference_package_cannot_be_imported_from_a_submission(batch):
    o = batch["outcomes"]["imports_reference"]
    first_step = _cell(o, "adam_first_step_moves_lr")
    assert (first_step.kernel, first_step.judge, first_step.score) == (0.0, False, 0.0)
    assert o.score <= batch["outcomes"]["buggy"].score


@pytest.mark.parametrize("student", ["loops_forever", "eats_memory", "calls_sys_exit"])
def test_runaway_cells_are_stopped_and_honest_work_still_counts(batch, student):
    o = batch["outcomes"][student]
    assert (o.status, o.score) == ("graded", batch["full"])


def test_a_kernel_killed_by_os_exit_is_recorded_and_scores_nothing(batch):
    o = batch["outcomes"]["calls_os_exit"]
    assert (o.status, o.score) == ("failed", 0.0)
    assert "the kernel stopped: DeadKernelError" in o.reason


# -- what a submission says: display, hidden tests, floods, odd characters -----------------------

def _autograded(course: Course, student: str):
    """The notebook kept for display (what formgrader and the feedback page render) and its size."""
    path = course.root / "autograded" / student / "06_optimizers" / "optimizers.ipynb"
    return nbformat.read(path, as_version=4), path.stat().st_size


def _unsafe_markup(page: str) -> list:
    """Tags and attributes of an HTML fragment that could run script, style or fetch anything."""
    from html.parser import HTMLParser

    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("script", "iframe", "svg", "style", "object", "embed", "link", "meta", "base", "form"):
                found.append(tag)
            for name, value in attrs:
                if name.startswith("on") or name in ("style", "class", "id") and tag != "div" or \
                        name in ("href", "src") and not re.match(r"(https?:|mailto:|data:image/(png|jpeg);)", value or ""):
                    found.append(f"{tag} {name}={value!r}")

    Parser().feed(page)
    return found


def check_display(course: Course, outcomes: dict, full: float) -> None:
    """The display cases of a batch (root or unprivileged): scores, caps, and nothing kept unsafe."""
    recorded = recorded_scores(course, [s for s in DISPLAY_SCORES if s in outcomes])
    for student, expected in DISPLAY_SCORES.items():
        if student not in outcomes:
            continue
        assert recorded[student].automatic == (full if expected == "full" else expected), (student, outcomes[student])
    assert (outcomes["many_cells"].status, outcomes["many_cells"].reason) == (
        "invalid", f"the notebook has {len(nbformat.read(course.release_notebook(course.module('06')), 4).cells) + 60_000:,} cells, more "
        "than the 1,000 a submission may have (max_cells in settings.ini): start again from the student version")
    appended = len(nbformat.read(course.release_notebook(course.module("06")), 4).cells)  # the cell after the last
    assert (outcomes["lone_surrogate"].status, outcomes["lone_surrogate"].reason) == (
        "invalid", f"the notebook is not valid Unicode: cell {appended} (lone-surrogate) holds a lone surrogate "
        "(\\udXXX), text that Jupyter cannot save; remove it and hand the notebook in again")
    assert (outcomes["bad_metadata"].status, outcomes["bad_metadata"].reason) == (
        "invalid", f"cell {appended} (odd) has nbgrader metadata of the wrong shape: start again from the student "
        "version, or copy your answers into it")
    if "floods" in outcomes:
        floods, size = _autograded(course, "floods")
        outputs = [o.get("text") for c in floods.cells if c.cell_type == "code" for o in c.outputs]
        assert "x" * 20_000 + "\n… [39,980,001 more characters not shown (max_output_chars)]" in outputs
        assert "… 900 more outputs not shown (max_outputs_per_cell)" in outputs
        assert size < 1 << 20
    printed = [line for c in _autograded(course, "prints_inputs")[0].cells if c.cell_type == "code"
               for o in c.outputs if o.get("name") == "stdout" for line in o.text.splitlines()]
    assert "hidden lines seen: 0" in printed
    assert any(line.startswith("read: ") and "/job/in/submission.ipynb" in line for line in printed), printed
    instructor = nbformat.read(course.source_notebook(course.module("06")), as_version=4)
    hidden = hidden_lines(instructor)
    for folder in sorted((course.root / "autograded").glob("*/06_optimizers")):
        if not (folder / "optimizers.ipynb").is_file():
            continue
        nb, _ = _autograded(course, folder.parent.name)
        text = nbformat.writes(nb)
        assert [h for h in hidden if h in text] == [], folder.parent.name
        assert nb.metadata == instructor.metadata
        for cell in nb.cells:
            if cell.cell_type == "raw":  # shown by no page
                assert cell.metadata == {"raw_mimetype": "text/plain"}
                continue
            assert set(cell.metadata) <= {"nbgrader"} and "attachments" not in cell
            if cell.cell_type == "markdown":
                assert _unsafe_markup(cell.source) == [], cell.source


def test_what_a_submission_says_is_data_capped_and_free_of_hidden_tests(batch):
    check_display(batch["course"], batch["outcomes"], batch["full"])
