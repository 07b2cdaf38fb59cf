"""The judge on its own (no nbgrader): verdicts, mirroring across the jail, set-up failures."""

from __future__ import annotations

import subprocess

import nbformat
import numpy as np
import pytest

from tests import submissions as sub
from tests.grading import hostile
from tito.course.grading import judge as judge_module
from tito.course.grading.host import student_package
from tito.course.grading.jail import Jail
from tito.course.grading.judge import (
    MachineError,
    SandboxSetupError,
    StudentError,
    StudentProcess,
    SupportCellError,
    judge,
)
from tito.course.settings import Course, GradingLimits

pytestmark = pytest.mark.slow  # starts jailed processes
COURSE = Course()
REFERENCE = nbformat.read(COURSE.source_notebook(COURSE.module("06")), as_version=4)
LIMITS = GradingLimits(
    cell_timeout_seconds=30,
    memory_limit_mb=2500,
    submission_timeout_seconds=120,
    max_processes=64,
    scratch_mb=64,
    max_output_mb=16,
)


@pytest.fixture
def jail(tmp_path):
    j = Jail(LIMITS, tmp_path)
    j.add_package(student_package(COURSE))
    yield j
    j.close()  # its control groups go with it


def _student(jail, *cells: str, timeout=10):
    return StudentProcess(
        list(cells), cell_timeout=timeout, jail=jail, tensor_class=COURSE.package.tensor_class
    )


def test_reference_passes_every_graded_cell_in_the_judge(jail):
    report = judge(REFERENCE, REFERENCE, jail, tensor_class=COURSE.package.tensor_class)
    assert [v.grade_id for v in report.verdicts if not v.passed] == []
    assert len(report.verdicts) == 45


def test_in_place_updates_and_shared_objects_are_mirrored(jail):
    sp = _student(
        jail,
        "import numpy as np\n_cache = {}\n"
        "def kernel(p, g, state):\n"
        "    p -= g\n"
        "    state['buf'] = _cache.setdefault(p.shape, np.zeros(p.shape))\n",
    )
    try:
        p1, p2, g = np.ones(3), np.ones(3), np.full(3, 0.5)
        s1, s2 = {}, {}
        assert sp.call("kernel", (p1, g, s1), {}, deadline=1e18) is None
        sp.call("kernel", (p2, g, s2), {}, deadline=1e18)
        assert p1.tolist() == [0.5, 0.5, 0.5]  # the caller's array changed in place
        assert s1["buf"] is s2["buf"]  # one buffer shared by mistake stays one buffer here
    finally:
        sp.close()


def test_student_errors_keep_builtin_types_but_judge_failures_do_not(jail):
    sp = _student(
        jail, "def f():\n    raise ValueError('bad lr')\ndef g():\n    raise SystemExit(0)\n"
    )
    try:
        with pytest.raises(ValueError, match="bad lr"):
            sp.call("f", (), {}, deadline=1e18)
        with pytest.raises(judge_module.StudentError, match="SystemExit"):
            sp.call("g", (), {}, deadline=1e18)
        with pytest.raises(NameError, match="does not define h"):
            sp.call("h", (), {}, deadline=1e18)
    finally:
        sp.close()


def test_a_slow_exported_cell_is_stopped_and_the_rest_still_runs(jail):
    sp = _student(jail, "while True:\n    pass", "def f():\n    return 7", timeout=2)
    try:
        assert sp.call("f", (), {}, deadline=1e18) == 7
        assert "TimeoutError" in sp.cell_errors[0]
    finally:
        sp.close()


def test_the_student_process_sees_only_the_jail(jail):
    """No course folder, no reference package, no network, only its own processes."""
    sp = _student(
        jail,
        f"""\
import os, socket
def probe():
    try:
        import tinytorch.core.optimizers
        reference = "imported"
    except ImportError:
        reference = "missing"
    try:
        socket.create_connection(("127.0.0.1", 22), timeout=1)
        net = "connected"
    except OSError as e:
        net = type(e).__name__
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    seen = [p for p in
        {[str(COURSE.root / x) for x in ("settings.ini", "assignments", "tinytorch", "release")]!r}
            if os.path.exists(p)]
    return [seen, reference, net, len(pids), os.access("/usr", os.W_OK)]
""",
    )
    try:
        course_files, reference, net, n_processes, usr_writable = sp.call(
            "probe", (), {}, deadline=1e18
        )
    finally:
        sp.close()
    assert (course_files, reference, usr_writable) == ([], "missing", False)
    assert net == "ConnectionRefusedError"  # a loopback of its own, on which nothing listens
    assert n_processes <= 3  # bubblewrap's init, prlimit's exec'd python, nothing of the host's


def test_closing_a_jail_removes_the_control_groups_of_its_processes(jail):
    """As root every jailed process tree has control groups of its own; once the tree has
    ended, closing the jail removes them (the kernel frees a group only just after)."""
    sp = _student(jail, "def f():\n    return 1\n")
    assert sp.call("f", (), {}, deadline=1e18) == 1
    folders = [f for bound in jail._bounds.values() for f in set(bound.folders.values())]
    sp.close()
    assert folders and all(f.is_dir() for f in folders)
    jail.close()
    assert [f for f in folders if f.exists()] == []


def test_a_sandbox_that_cannot_start_is_the_graders_problem_not_a_zero(jail, monkeypatch):
    monkeypatch.setattr(judge_module.sys, "executable", "/nonexistent/python")
    with pytest.raises(SandboxSetupError, match="could not start"):
        judge(REFERENCE, REFERENCE, jail, tensor_class=COURSE.package.tensor_class)


def test_a_broken_test_support_cell_is_the_graders_problem_not_a_zero(jail):
    broken = sub.set_source(REFERENCE, "test_support", "raise KeyError('helpers')\n")
    with pytest.raises(SupportCellError, match="test-support cells raised KeyError") as e:
        judge(broken, REFERENCE, jail, tensor_class=COURSE.package.tensor_class)
    assert isinstance(e.value, MachineError)  # the job fails and nothing is scored


def test_a_support_cell_with_hidden_tests_never_goes_to_the_students_process(jail):
    training = sub.by_grade_id(REFERENCE)["test_support_training"].source
    secret = "### BEGIN HIDDEN TESTS\nLIMIT = 0.1\n### END HIDDEN TESTS\n"
    leaky = sub.set_source(REFERENCE, "test_support_training", training + "\n" + secret)
    with pytest.raises(SupportCellError, match="'test_support_training' runs in the student's"):
        judge(leaky, REFERENCE, jail, tensor_class=COURSE.package.tensor_class)


def test_every_graded_cell_gets_its_own_copy_of_the_support_helpers(jail):
    """A graded cell that rebinds a helper (in the namespace the helpers see) changes nothing for
    the next one."""
    source = next(
        c.source
        for c in REFERENCE.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "gd_step_values"
    )
    spoiled = sub.set_source(
        REFERENCE, "gd_step_values", source + "\ncheck_close.__globals__['check_close'] = None\n"
    )
    report = judge(spoiled, REFERENCE, jail, tensor_class=COURSE.package.tensor_class)
    assert [v.grade_id for v in report.verdicts if not v.passed] == []


def test_a_solution_region_outside_a_function_is_refused():
    nb = sub.set_source(
        REFERENCE, "step_lr_impl", "#| export\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n"
    )
    with pytest.raises(ValueError, match="inside a top-level function"):
        judge_module.student_functions([c for c in nb.cells if c.source.startswith("#| export")])


# sgd_step keeps every option set it is called with (and does its work); adam_step raises them
# as its error.
def test_no_message_holds_what_a_hidden_test_gave_the_students_code(jail):
    """A submission that keeps the option sets its sgd_step sees and raises them from its
    adam_step once it has seen a grid of new ones (the rest of it complete) finds none of the
    hidden ones in any message: every visible part runs before any hidden one, and a hidden
    part's failure names only the kind and the function."""
    complete = sub.filled(
        nbformat.read(COURSE.release_notebook(COURSE.module("06")), as_version=4), REFERENCE
    )
    nb = hostile.echoes_hidden_inputs(complete)
    report = judge(REFERENCE, nb, jail, tensor_class=COURSE.package.tensor_class)
    secrets = hostile.hidden_option_sets(REFERENCE)
    assert secrets == ["'dampening': 0.3"]
    messages = [v.message for v in report.verdicts if not v.passed]
    assert [(m, s) for m in messages for s in secrets if s in m] == []
    by_id = {v.grade_id: v.message for v in report.verdicts if not v.passed}
    hidden_failure = "a hidden check failed in adam_step() (hidden inputs and values are not shown)"
    assert by_id == {
        "adam_matches_pytorch_trajectory": hidden_failure,
        "adamw_matches_pytorch_trajectory": hidden_failure.replace("adam_step", "adamw_step"),
    }


def test_a_support_function_runs_after_the_students_cells_and_its_reply_is_bounded(jail):
    """A support cell's function runs in the student's process, after their cells, and may
    return arrays of shapes the call did not send; its reply is still bounded."""
    support = "import numpy as np\ndef fill(n):\n    return [np.full(n, SCALE, np.float32)]\n"
    sp = StudentProcess(
        ["SCALE = 3\n"],
        cell_timeout=10,
        jail=jail,
        tensor_class=COURSE.package.tensor_class,
        support=[support],
    )
    try:
        [got] = sp.call("fill", (4,), {}, deadline=1e18, shaped=False)
        assert got.dtype == np.float32 and got.tolist() == [3.0, 3.0, 3.0, 3.0]
        with pytest.raises(StudentError, match=r"replied with an array of shape \(4,\)"):
            sp.call("fill", (4,), {}, deadline=1e18)  # a kernel's reply: shapes it was sent
        too_long = r"fill\(\) stopped the process .* more than the 1048[0-9]* a valid one"
        with pytest.raises(StudentError, match=too_long):
            sp.call("fill", (300_000,), {}, deadline=1e18, shaped=False)  # 1.2 MB
    finally:
        sp.close()


@pytest.mark.parametrize("what", ["cycle", "cycle without a number", "tensor of a list"])
def test_a_reply_that_would_make_trusted_numpy_walk_forever_is_refused(jail, what):
    """A process that forges its replies (a list inside itself, a Tensor whose data is a list)
    gets a StudentError at once, as a support function's result and as an argument's state."""
    sp = _student(jail, hostile.FORGES_REPLIES)
    try:
        with pytest.raises(StudentError, match=r"f\(\) returned something unusable"):
            sp.call("f", ({}, what), {}, deadline=1e18, shaped=False)
        with pytest.raises(StudentError, match=r"f\(\) left its arguments in an unusable state"):
            sp.call("f", ({}, what), {}, deadline=1e18)
        assert sp.call("f", ({}, "plain"), {}, deadline=1e18, shaped=False) == "plain"
    finally:
        sp.close()


def test_training_is_scored_on_the_weights_it_returns_not_on_what_it_reports(jail):
    """The training loop runs in the student's process; a process that makes it record a loss of
    0 at every step without training fails both training cells on the loss the judge computes
    from the returned weights, and every other cell passes."""
    complete = sub.filled(
        nbformat.read(COURSE.release_notebook(COURSE.module("06")), as_version=4), REFERENCE
    )
    report = judge(
        REFERENCE,
        hostile.reports_perfect_training(complete),
        jail,
        tensor_class=COURSE.package.tensor_class,
    )
    failed = {v.grade_id: v.message for v in report.verdicts if not v.passed}
    reported, untrained = "after 200 steps (first 0.000)", "AssertionError: final loss 1.37"
    assert failed == {
        "mlp_adamw_warmup_cosine_reaches_target": (
            f"{untrained}78 {reported}, expected < 0.1; see Adam/AdamW tests"
        ),
        "mlp_nesterov_cosine_reaches_target": (
            f"{untrained}86 {reported}, expected < 0.2; see SGD tests"
        ),
    }


def test_a_large_optimizer_step_calls_the_students_kernel_one_call_at_a_time(jail, monkeypatch):
    """The optimizers give half of a large step to a helper thread; in the judge both threads
    call the student's kernel through one wire, one call after the other."""
    import tinytorch.core.optimizers as optimizers
    from tinytorch.core.optimizers import SGD
    from tinytorch.core.tensor import Parameter

    kernel = next(
        c.source
        for c in REFERENCE.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "sgd_step_impl"
    )
    sp = _student(jail, "import numpy as np\n", kernel)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(n) for n in (300_000, 300_000)]
    grads = [rng.standard_normal(n) for n in (300_000, 300_000)]
    try:
        results = []
        for through_the_wire in (False, True):
            params = [Parameter(a.copy()) for a in arrays]
            for p, g in zip(params, grads):
                p.grad = g.copy()
            if through_the_wire:
                clock = {"deadline": 1e18}
                monkeypatch.setattr(
                    optimizers, "sgd_step", judge_module._proxy(sp, "sgd_step", clock, None)
                )
            opt = SGD(params, lr=0.1, momentum=0.9)
            opt.PARALLEL_ELEMENTS = 1  # split these two parameters between two threads
            for _ in range(3):
                opt.step()
            assert sorted({key[2] for key in opt._scratch}) == [0, 1]  # both threads stepped
            results.append([p.data for p in params])
        assert all(np.array_equal(a, b) for a, b in zip(*results))
    finally:
        sp.close()


def test_a_student_process_started_from_a_thread_outlives_that_thread(jail):
    """The jail dies with the thread that starts it (a parent-death signal): a call from a
    thread that then ends, as a large optimizer step's helper thread does, must not take the
    student's process with it."""
    import threading

    sp = _student(jail, "def f(x):\n    return x + 1\n")
    try:
        first: list = []
        caller = threading.Thread(target=lambda: first.append(sp.call("f", (1,), {}, 1e18)))
        caller.start()
        caller.join()
        with pytest.raises(subprocess.TimeoutExpired):  # still running after the thread ended
            sp.proc.wait(timeout=0.5)
        assert (first, sp.call("f", (2,), {}, 1e18)) == ([2], 3)
        sp.close()
        assert sp.call("f", (3,), {}, 1e18) == 4  # a call after close() starts it again
    finally:
        sp.close()
