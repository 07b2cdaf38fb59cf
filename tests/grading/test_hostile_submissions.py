"""Hostile and broken submissions through the real pipeline (jailed kernel run + judge).

One batch grades them all on a Dask cluster next to an honest classmate; each test then
checks one guarantee. The same attacks run again through `tito nbgrader autograde` as an
unprivileged user in test_hostile_unprivileged.py; the cases and the checks both batches
share are in batch_checks.py, the attacks themselves in hostile.py.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests import submissions as sub
from tests.conftest import BATCH_MEMORY_MB, report_summary
from tests.grading import hostile
from tests.grading.batch_checks import (
    EAT_MEMORY,
    FORGE_NUMPY,
    FORGE_TRACEBACKS,
    HOARD,
    HONEST,
    IMPORT_REFERENCE,
    LOOP_FOREVER,
    REAPS_CHILDREN,
    cell_of,
    check_attack_cells,
    check_display,
    check_reaped_children,
    check_resources,
    display_cases,
    full_score,
    hostile_cases,
    keyring,
    notebooks,
    place,
    printed,
    processes_with,
    recorded_scores,
    snapshot,
)
from tests.grading.dask_cluster import local_cluster
from tito.course.examples import with_mistake
from tito.course.grading.host import autograde
from tito.course.grading.jail import kernel_memory_bounded
from tito.course.grading.report import score_rows

pytestmark = pytest.mark.slow
BUSY = "the grading machine was busy"

# -- the batch as root (or as the current user) ---------------------------------------------


@pytest.fixture(scope="module")
def batch(graded_course, tmp_path_factory, request):
    course = graded_course
    m, release, instructor, complete = notebooks(course)
    tmpdir = tmp_path_factory.mktemp("grading-tmp")
    buggy = with_mistake(complete, m, "adam-eps-inside-sqrt")
    cases = {
        HONEST: complete,
        "untouched": release,
        "buggy": buggy,
        "not_json": b'{"cells": [ this is not json',
        # (A test cell deleted, duplicated or edited: test_read_and_record.py shows the job gets
        # the notebook of the bug alone.)
        "all_grade_cells_deleted": hostile.without_grade_cells(complete),
        "forged_numpy": sub.insert_code_cell(buggy, None, FORGE_NUMPY),
        "forged_tracebacks": sub.insert_code_cell(buggy, None, FORGE_TRACEBACKS),
        "forged_in_export_cell": sub.insert_code_cell(buggy, None, "#| export\n" + FORGE_NUMPY),
        "imports_reference": sub.replace_region(complete, "adam_step_impl", IMPORT_REFERENCE),
        "loops_forever": sub.insert_code_cell(complete, "adam_step_impl", LOOP_FOREVER),
        "eats_memory": sub.insert_code_cell(complete, "adam_step_impl", "#| export\n" + EAT_MEMORY),
        "calls_sys_exit": sub.insert_code_cell(
            complete, "adam_step_impl", "import sys\nsys.exit(3)"
        ),
        "calls_os_exit": sub.insert_code_cell(complete, "adam_step_impl", "import os\nos._exit(0)"),
        REAPS_CHILDREN: hostile.reaps_children(complete),
        "counts_limits": hostile.with_attack(
            hostile.with_attack(complete, hostile.counts_limits(), kernel_only=True),
            hostile.reads_proc_count(),
            kernel_only=True,
        ),
        **(attacks := hostile_cases(course, tmpdir)),
        # Kernel memory: counted by the control group (as root), so stopped at the limit.
        "fills_sockets": hostile.with_attack(release, hostile.fills_sockets(4000)),
        # The 40 MB flood runs in test_hostile_unprivileged.py's batch only (it costs time, not
        # coverage).
        **{s: c for s, c in display_cases(release, instructor, complete).items() if s != "floods"},
    }
    paths = place(course, cases)
    submitted = {s: p.read_bytes() for s, p in paths.items() if p.is_file() and not p.is_symlink()}
    # Graded on a Dask cluster of three workers, one of which is killed (SIGKILL) once the
    # first outcome is in, while the others' jobs run: its jobs are run again elsewhere.
    with local_cluster(tmp_path_factory.mktemp("dask"), workers=3, env={"TMPDIR": str(tmpdir)}) as (
        address,
        workers,
    ):
        killed = []

        def kill_a_worker(outcome):
            if not killed:
                killed.append(outcome.student)
                os.kill(workers[0].pid, signal.SIGKILL)

        before, keys_before = snapshot(course, tmpdir), keyring()
        outcomes = autograde(
            course,
            m,
            sorted(paths),
            scheduler=address,
            on_done=kill_a_worker,
            # Run by a user with no control group, the batch tests the memory watch instead.
            accept_unbounded_kernel_memory=not kernel_memory_bounded(),
        )
        killed_status = workers[0].wait(timeout=10)
        # A machine too busy to grade (this batch's three workers and another test file's batch
        # on two cores) fails an outcome and scores nothing; the grader asks to grade it again,
        # here up to three times while the machine stays busy.
        graded = {o.student: o for o in outcomes}
        busy: list[str] = []
        for _ in range(3):
            again = [s for s, o in graded.items() if o.status == "failed" and BUSY in o.reason]
            if not again:
                break
            busy += [s for s in again if s not in busy]
            graded.update(
                (o.student, o)
                for o in autograde(
                    course,
                    m,
                    again,
                    scheduler=address,
                    accept_unbounded_kernel_memory=not kernel_memory_bounded(),
                )
            )
    lingering = processes_with(hostile.MARKER)
    after = snapshot(course, tmpdir)
    report_summary(
        request.config,
        "hostile batch on Dask (root)",
        f"{len(paths)} submissions on 3 workers, one killed; {len(busy)} graded again after a "
        f"busy machine failed them ({', '.join(busy) or 'none'})",
    )
    return dict(
        course=course,
        outcomes=graded,
        busy=busy,
        recorded=[o.student for o in outcomes],
        before=before,
        after=after,
        paths=paths,
        submitted=submitted,
        full=full_score(instructor),
        lingering=lingering,
        killed_status=killed_status,
        keys=(keys_before, keyring()),
        attacks=list(attacks),
    )


def test_every_submission_gets_exactly_one_outcome_though_a_worker_was_killed(batch):
    assert batch["killed_status"] == -signal.SIGKILL
    assert sorted(batch["recorded"]) == sorted(batch["paths"])
    from nbgrader.api import Gradebook

    course = batch["course"]
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", course.course_id) as gb:
        # The course is shared with other test files: look at this batch's students only.
        rows = sorted(
            (s.student.id, len(s.notebooks), s.score)
            for s in gb.find_assignment("06_optimizers").submissions
            if s.student.id in batch["outcomes"]
        )
    # nbgrader's total counts a cell without a score as 0: a failed outcome (a job the machine
    # starved) has none in the record (test_read_and_record.py), so its total here is 0.
    expected = [(s, 1, 0.0 if o.score is None else o.score) for s, o in batch["outcomes"].items()]
    assert rows == sorted(expected)


def test_every_submission_gets_a_recorded_outcome(batch):
    assert sorted(batch["outcomes"]) == sorted(batch["paths"])
    for student, o in batch["outcomes"].items():
        saved = batch["course"].root / "autograded" / student / "06_optimizers" / "grading.json"
        # what grading alone knows; the scores are in the gradebook (the test above)
        kept = json.loads(saved.read_text())
        assert (
            kept["status"] == o.status
            and "score" not in kept
            and all("score" not in c for c in kept["cells"])
        )
    # Every submission whose code ran, ran jailed; the others record that nothing ran.
    ran = {
        o.isolation
        for o in batch["outcomes"].values()
        if any(c.kernel is not None for c in o.cells)
    }
    assert ran == (
        {f"bubblewrap, seccomp, cgroup ({BATCH_MEMORY_MB} MB in all, 1 CPU)"}
        if os.geteuid() == 0
        else {
            f"bubblewrap, seccomp, memory watch ({BATCH_MEMORY_MB} MB in all, user pages only), "
            "no CPU quota"
        }
    )
    assert {o.isolation for o in batch["outcomes"].values() if o.status == "invalid"} == {""}


def test_the_honest_classmate_keeps_full_marks_and_untouched_scores_zero(batch):
    o = batch["outcomes"]
    assert (o[HONEST].status, o[HONEST].score, o[HONEST].max_score) == (
        "graded",
        batch["full"],
        batch["full"],
    )
    assert (o["untouched"].status, o["untouched"].score) == ("graded", 0.0)


@pytest.mark.parametrize(
    "student", ["plants_code", "writes_course", "lingers", "loopback", "reads_files", "signals"]
)
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
    """The attacker killed its own kernel run's client: that stage's cells score 0, graded (a
    submission cannot make itself `failed`, the machine's status)."""
    o = batch["outcomes"]["signals"]
    assert (o.status, o.score) == ("graded", 0.0)
    assert (
        "the kernel run returned no readable notebook: the cells it did not run score 0" in o.reason
    )


def test_what_a_submission_uses_stays_within_its_own_job(batch):
    """Kernel objects denied, memory bounded for all processes together, a CPU hog capped at one
    CPU (the honest classmate, graded meanwhile, keeps full marks), a broadcast reply refused."""
    check_resources(batch["course"], batch["outcomes"], *batch["keys"])
    if os.geteuid() == 0:  # the control group's own peak: never above the limit
        assert 0 < batch["outcomes"][HOARD].memory_mb["kernel"] <= BATCH_MEMORY_MB


def test_socket_buffers_count_against_the_memory_limit(batch):
    """Socket buffers are kernel memory: the job's control group counts them with everything else,
    so a submission that fills socket pairs towards 4,000 MB is stopped at the 1,000 MB limit in
    the kernel run and in the judge, scores nothing, and the honest classmate keeps full marks."""
    if not kernel_memory_bounded():
        pytest.skip(
            "without a control group, grading counts user pages only (refused unless "
            "accepted: test_hostile_unprivileged.py)"
        )
    if hostile.socket_fill_reach_mb() < 1.2 * BATCH_MEMORY_MB:
        pytest.skip(
            f"net.core.wmem_max lets one jailed process hold about "
            f"{hostile.socket_fill_reach_mb()} MB of socket buffers, under the 1,000 MB limit"
        )
    fills = batch["outcomes"]["fills_sockets"]
    assert fills.status == "graded" and fills.score == 0, fills
    assert "the kernel run held more than memory_limit_mb" in fills.reason, fills.reason
    assert printed(batch["course"], "fills_sockets", "socket buffers held MB: ") == []
    assert 0 < fills.memory_mb["kernel"] <= BATCH_MEMORY_MB
    honest = batch["outcomes"][HONEST]
    assert honest.score == batch["full"] == 92, honest


def test_every_attack_scores_nothing_in_any_cell(batch):
    check_attack_cells(
        batch["outcomes"], recorded_scores(batch["course"], batch["outcomes"]), batch["attacks"]
    )


def test_no_process_outlives_its_job(batch):
    assert batch["lingering"] == []


def test_no_file_outside_the_jobs_outputs_changes(batch):
    before, after = batch["before"], batch["after"]
    assert {
        k
        for k in before["course"].keys() | after["course"].keys()
        if before["course"].get(k) != after["course"].get(k)
    } == set()
    assert {
        k
        for k in before["environment"].keys() | after["environment"].keys()
        if before["environment"].get(k) != after["environment"].get(k)
    } == set()
    assert after["tmp"] == before["tmp"] == []  # each job's folder is gone, nothing planted
    assert not Path("/tmp/tito-hostile").exists()
    for s, data in batch["submitted"].items():
        assert batch["paths"][s].read_bytes() == data


def test_limits_hold_inside_the_jail(batch):
    course = batch["course"]
    limits = course.grading
    assert batch["outcomes"]["counts_limits"].score == batch["full"]  # honest work still counts
    (forked,) = printed(course, "counts_limits", "forked: ")
    (scratch,) = printed(course, "counts_limits", "scratch MB: ")
    (visible,) = printed(course, "counts_limits", "visible processes: ")
    assert 0 < forked < limits.max_processes
    assert scratch < limits.scratch_mb
    assert visible <= 3  # bubblewrap's init, the notebook runner, the kernel


@pytest.mark.parametrize("student", ["symlinked", "foldered", "piped"])
def test_a_submission_that_is_no_regular_file_is_invalid(batch, student):
    o = batch["outcomes"][student]
    assert (o.status, o.score, o.max_score) == ("invalid", 0.0, batch["full"])
    expected = (
        "not a regular file: "
        + {"symlinked": "a symbolic link", "foldered": "a folder", "piped": "a named pipe"}[student]
    )
    assert o.reason == f"the submission cannot be read: {expected}"


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
    assert (row["status"], row["total"]) == ("not graded", None)
    assert next(r for r in rows if r["student"] == HONEST)["total"] == batch["full"]


def test_a_submission_without_any_test_cell_is_invalid_with_nbgraders_own_error(batch):
    """nbgrader cannot restore the test cells of a notebook that lost all of them: the
    submission's doing (invalid, 0), with nbgrader's real error."""
    o = batch["outcomes"]["all_grade_cells_deleted"]
    assert (o.status, o.score) == ("invalid", 0.0)
    assert o.reason.startswith("the notebook lost 45 of the module's cells (gd_step_values, ")
    assert "and nbgrader cannot put them back (KeyError: 'sgd_class')" in o.reason


def test_a_realistic_bug_loses_exactly_the_cells_that_test_it(batch):
    buggy = batch["outcomes"]["buggy"]
    assert 0 < buggy.score < batch["full"]
    assert cell_of(buggy, "adam_eps_outside_sqrt").score == 0.0


def test_a_file_that_is_not_json_is_recorded_as_invalid_with_zero(batch):
    o = batch["outcomes"]["not_json"]
    assert (o.status, o.score) == ("invalid", 0.0)
    assert o.reason.startswith("not a valid notebook")
    assert o.max_score == batch["full"]


@pytest.mark.parametrize("student", ["forged_numpy", "forged_tracebacks", "forged_in_export_cell"])
def test_forging_the_checks_in_the_kernel_earns_nothing(batch, student):
    o, buggy = batch["outcomes"][student], batch["outcomes"]["buggy"]
    # No cell scores more than the same bug without the forgery (breaking numpy may cost more).
    assert all(c.score <= b.score for c, b in zip(o.cells, buggy.cells))
    assert o.score <= buggy.score < batch["full"]
    # The judge, not the kernel, decided the cells the bug fails.
    assert cell_of(o, "adam_eps_outside_sqrt").judge is False


def test_the_reference_package_cannot_be_imported_from_a_submission(batch):
    o = batch["outcomes"]["imports_reference"]
    first_step = cell_of(o, "adam_first_step_moves_lr")
    assert (first_step.kernel, first_step.judge, first_step.score) == (0.0, False, 0.0)
    assert o.score <= batch["outcomes"]["buggy"].score


@pytest.mark.parametrize("student", ["loops_forever", "eats_memory", "calls_sys_exit"])
def test_runaway_cells_are_stopped_and_honest_work_still_counts(batch, student):
    o = batch["outcomes"][student]
    assert (o.status, o.score) == ("graded", batch["full"])


def test_a_judged_function_that_burns_cpu_in_reaped_children_is_graded_not_failed(batch):
    recorded = recorded_scores(batch["course"], [REAPS_CHILDREN])[REAPS_CHILDREN]
    check_reaped_children(batch["outcomes"][REAPS_CHILDREN], recorded, batch["full"])


def test_a_kernel_killed_by_os_exit_is_graded_and_the_cells_it_never_ran_score_nothing(batch):
    """The complete solution with `os._exit` in a cell after Adam's code: every cell before it
    keeps its points, every cell after it scores 0 (the judge passes them all)."""
    o = batch["outcomes"]["calls_os_exit"]
    assert o.status == "graded" and "the kernel stopped: DeadKernelError" in o.reason
    assert all(c.judge for c in o.cells)
    ran = [c.kernel == c.max_score for c in o.cells]
    assert ran == sorted(ran, reverse=True) and 0 < sum(ran) < len(ran)
    assert o.score == sum(c.max_score for c in o.cells if c.kernel == c.max_score)


def test_what_a_submission_says_is_data_capped_and_free_of_hidden_tests(batch):
    check_display(batch["course"], batch["outcomes"], batch["full"])
