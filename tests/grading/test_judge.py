"""The isolated judge on its own (no nbgrader): verdicts, mirroring across the boundary, set-up failures."""
from __future__ import annotations

import numpy as np
import nbformat
import pytest

from tito.course.grading import isolation, judge as judge_module
from tito.course.grading import submissions as sub
from tito.course.grading.judge import SandboxSetupError, StudentProcess, judge
from tito.course.settings import Course

COURSE = Course()
REFERENCE = nbformat.read(COURSE.source_notebook(COURSE.module("06")), as_version=4)


def _student(code: str, timeout=10):
    return StudentProcess([code], timeout=timeout, memory_mb=2000, hide=[COURSE.root])


def test_reference_passes_every_graded_cell_in_the_judge():
    report = judge(REFERENCE, REFERENCE, cell_timeout=30, memory_mb=2500, hide=[COURSE.root])
    assert [v.grade_id for v in report.verdicts if not v.passed] == []
    assert len(report.verdicts) == 45
    assert report.isolated == isolation.available()


def test_in_place_updates_and_shared_objects_are_mirrored():
    sp = _student("import numpy as np\n_cache = {}\n"
                  "def kernel(p, g, state):\n"
                  "    p -= g\n"
                  "    state['buf'] = _cache.setdefault(p.shape, np.zeros(p.shape))\n")
    try:
        p1, p2, g = np.ones(3), np.ones(3), np.full(3, 0.5)
        s1, s2 = {}, {}
        assert sp.call("kernel", (p1, g, s1), {}, deadline=1e18) is None
        sp.call("kernel", (p2, g, s2), {}, deadline=1e18)
        assert p1.tolist() == [0.5, 0.5, 0.5]  # the caller's array changed in place
        assert s1["buf"] is s2["buf"]  # one buffer shared by mistake stays one buffer here
    finally:
        sp.close()


def test_student_errors_keep_builtin_types_but_judge_failures_do_not():
    sp = _student("def f():\n    raise ValueError('bad lr')\ndef g():\n    raise SystemExit(0)\n")
    try:
        with pytest.raises(ValueError, match="bad lr"):
            sp.call("f", (), {}, deadline=1e18)
        with pytest.raises(judge_module.StudentError, match="SystemExit"):
            sp.call("g", (), {}, deadline=1e18)
        with pytest.raises(NameError, match="does not define h"):
            sp.call("h", (), {}, deadline=1e18)
    finally:
        sp.close()


def test_a_slow_exported_cell_is_stopped_and_the_rest_still_runs():
    sp = _student("while True:\n    pass", timeout=2)
    sp.cells.append("def f():\n    return 7")
    try:
        sp._code_path.write_text(__import__("json").dumps(sp.cells))
        assert sp.call("f", (), {}, deadline=1e18) == 7
        assert "TimeoutError" in sp.cell_errors[0]
    finally:
        sp.close()


def test_a_failed_isolation_set_up_falls_back_and_says_so(monkeypatch):
    if not isolation.available():
        pytest.skip("isolation needs root (unshare)")
    monkeypatch.setattr(isolation, "command", lambda argv, hide, staged: ["sh", "-c", "exit 3"])
    nb = sub.replace_region(REFERENCE, "step_lr_impl", "return base_lr * gamma ** (epoch // step_size)")
    report = judge(REFERENCE, nb, cell_timeout=30, memory_mb=2500, hide=[COURSE.root])
    assert report.isolated is False
    assert [v.grade_id for v in report.verdicts if not v.passed] == []


def test_a_sandbox_that_cannot_start_is_the_graders_problem_not_a_zero(monkeypatch):
    monkeypatch.setattr(isolation, "available", lambda: False)
    monkeypatch.setattr(judge_module.sys, "executable", "/nonexistent/python")
    with pytest.raises(SandboxSetupError, match="could not start"):
        judge(REFERENCE, REFERENCE, cell_timeout=5, memory_mb=2500, hide=[COURSE.root])
