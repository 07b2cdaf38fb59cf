"""A machine that keeps a job waiting is never the student's fault.

processes.py tells a process tree that waited for a CPU (starved) from one that slept or
computed: real processes here, pinned to one CPU next to busy competitors (the other tests
running meanwhile keep the rest of the machine). A call of the judge is waited for while it is
starved, until it has had its CPU, so a call that computes too long times out after the same
CPU however loaded the machine is and however it spreads its work over processes. The host then
turns a starved kernel run that cost points into a `failed` outcome, and a memory limit the
submission reached into a graded one with a note (host.decide on a job's data).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tests.grading import hostile
from tito.course.grading import processes
from tito.course.grading.display import DisplayLimits
from tito.course.grading.host import decide
from tito.course.grading.jailed.protocol import receive
from tito.course.grading.job import JobResult
from tito.course.settings import Module

SLOW = pytest.mark.slow  # seconds of busy processes: the tests that start them

CPU = min(os.sched_getaffinity(0))
BUSY = "while True:\n    pass"


def _start(code: str, nice: int = 0) -> subprocess.Popen:
    def pin():
        os.sched_setaffinity(0, {CPU})
        os.nice(nice)

    # One session for all: with autogroup scheduling a session of its own would get a fair share
    # whatever its nice value.
    return subprocess.Popen([sys.executable, "-c", code], preexec_fn=pin)


class _Started(list):
    """Start pinned processes (call it); every one, and its tree, is killed at the end."""

    @property
    def procs(self) -> list:
        return self

    def __call__(self, code: str, nice: int = 0) -> subprocess.Popen:
        self.append(_start(code, nice))
        return self[-1]


@pytest.fixture
def started():
    procs = _Started()
    yield procs
    for p in procs:
        for pid in reversed(processes.tree(p.pid)):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        p.wait()


def _call_that_never_answers(pid: int, seconds: float) -> tuple[str, float, float]:
    """Wait for an answer that never comes from the tree under `pid`, as the judge waits for a
    call: what ended the wait, the CPU the tree used meanwhile, and the seconds the wait was
    made longer because the machine held the tree back."""
    read, write = os.pipe()
    before = processes.cpu_seconds(processes.tree(pid))
    allowance = processes.Allowance(pid, seconds)
    try:
        receive(read, allowance.deadline, overtime=allowance.extend)
    except (TimeoutError, processes.Starved) as e:
        ended = f"{type(e).__name__}: {e}"
    finally:
        os.close(read)
        os.close(write)
    return ended, processes.cpu_seconds(processes.tree(pid)) - before, allowance.starved


CROWD = 15  # busy competitors at the victim's own priority: it gets a sixteenth of its CPU


@SLOW
def test_a_call_kept_waiting_behind_busy_processes_is_the_machines_doing(started):
    for _ in range(CROWD):
        started(BUSY)
    victim = started(BUSY)
    time.sleep(0.3)
    ended, _, _ = _call_that_never_answers(victim.pid, 0.5)  # waited for up to 8 x 0.5 s
    assert re.fullmatch(
        r"Starved: the grading machine was busy: in [4-9]\.\d s the code wanted a CPU "
        r"(9\d|100)% of the time and ran for 0\.[0-3]\d s",
        ended,
    ), ended


FORKS_AND_REAPS = "import os, time\n" + hostile.REAP_LOOP


@SLOW
def test_a_call_that_computes_times_out_after_its_cpu_however_loaded_and_spread(started):
    """A busy competitor at the same priority leaves the tree at most half its CPU: the call is
    waited for until the tree, its reaped children included, has used its whole time in CPU."""
    started(BUSY)
    victim = started(FORKS_AND_REAPS)
    time.sleep(0.3)
    began = time.monotonic()
    ended, cpu, _ = _call_that_never_answers(victim.pid, 1.0)
    assert ended == "TimeoutError: no answer before the time limit"
    assert 1.0 <= cpu <= 1.4 and 1.5 <= time.monotonic() - began < 8.0, (cpu, ended)


@SLOW
def test_the_jails_of_a_grader_started_with_nice_are_not_lowered():
    """An instructor may run a batch under `nice`: the jails inherit its priority, which is no
    choice of the submission's."""
    code = (
        "import subprocess, sys, time\n"
        "from tito.course.grading import processes\n"
        "child = subprocess.Popen([sys.executable, '-c', 'while True: pass'])\n"
        "time.sleep(0.3)\n"
        "print(processes.lowered(processes.tree(child.pid)))\n"
        "child.kill()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], preexec_fn=lambda: os.nice(5), capture_output=True, text=True
    )
    assert out.stdout == "False\n", out.stderr


@pytest.mark.parametrize(
    ("ran", "ran_now", "wanting", "last", "verdict"),
    [
        (0.3, 0.2, 1.0, False, "up"),  # it slept first, and now runs freely: its time is up
        (0.3, 0.05, 1.0, False, "more"),  # held back now: the machine's, wait
        (0.3, 0.05, 1.0, True, "starved"),  # ... still at its last look
        (1.0, 0.05, 1.0, True, "up"),  # it had its second of CPU
        (0.3, 0.0, 0.2, True, "up"),  # it sleeps
    ],
)
def test_a_look_past_a_calls_time_waits_only_while_the_machine_holds_it_back(
    ran, ran_now, wanting, last, verdict
):
    """The decision on the numbers of a look (0.2 s) at a call of one second."""
    assert processes.overtime_verdict(ran, 1.0, ran_now, wanting, 0.2, last) == verdict


@SLOW
def test_a_tree_that_lowers_its_own_priority_is_never_starved(started):
    """Outside a jail (whose filter denies it) a process may lower its priority; behind a busy
    competitor it then waits for a CPU, but by its own choice: its time is up at its time."""
    started(BUSY)
    victim = started(BUSY, nice=19)
    time.sleep(0.3)
    assert processes.lowered(processes.tree(victim.pid))
    began = time.monotonic()
    ended, _, _ = _call_that_never_answers(victim.pid, 0.5)
    assert ended == "TimeoutError: no answer before the time limit"
    assert time.monotonic() - began < 2.0  # one look, not the 4 s a starved call may wait


# Children that each burn 0.1 s of CPU (counted in CPU time, whatever the load) and exit while
# the parent, which never waits for them, sleeps: ignoring SIGCHLD or not is the only difference.
BUSY_CHILDREN = """\
import os, signal, sys, time
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for _ in range(5):
    if os.fork() == 0:
        while time.process_time() < 0.1:
            pass
        os._exit(0)
print("forked", flush=True)
time.sleep(60)
"""


def _cpu_of_children(started, sigchld: str) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", BUSY_CHILDREN, sigchld], stdout=subprocess.PIPE, text=True
    )
    started.procs.append(proc)
    assert proc.stdout.readline() == "forked\n"
    deadline = time.monotonic() + 120
    while any(processes.state(pid) not in ("Z", None) for pid in processes.tree(proc.pid)[1:]):
        assert time.monotonic() < deadline, "the children did not finish"
        time.sleep(0.05)  # until every child has burnt its CPU and exited
    time.sleep(0.5)  # the kernel's own reaping of ignored children is done by now
    return processes.cpu_seconds(processes.tree(proc.pid)[1:])  # the parent's own CPU left out


@SLOW
def test_children_that_exited_unreaped_still_count_their_cpu(started):
    """What the jail's filter keeps so: with SIGCHLD not ignored, a child that exits stays (a
    zombie) with its CPU until its parent waits for it, which then counts it; ignoring SIGCHLD
    (denied in the jail, test_jail_syscalls.py) would make the kernel drop it at once."""
    # Five children of 0.1 s each (the kernel's clock ticks round each down by up to 0.01 s).
    assert 0.45 <= _cpu_of_children(started, "keep") <= 0.6
    assert _cpu_of_children(started, "ignore") == 0.0


@SLOW
def test_a_call_that_sleeps_times_out_at_its_time(started, tmp_path):
    asleep = tmp_path / "asleep"
    sleeper = started(f"import time\nopen({str(asleep)!r}, 'w').close()\ntime.sleep(60)")
    # Counted from when it sleeps: Python's start-up (its CPU) comes first, longer when the
    # machine is busy.
    deadline = time.monotonic() + 60
    while not asleep.exists():
        assert time.monotonic() < deadline and sleeper.poll() is None, "the sleeper never slept"
        time.sleep(0.01)
    began = time.monotonic()
    ended, cpu, held_back = _call_that_never_answers(sleeper.pid, 0.5)
    assert ended == "TimeoutError: no answer before the time limit"
    # At its time: not a moment waited for a machine that held it back (a count, not a clock).
    assert cpu < 0.05 and held_back == 0.0 and time.monotonic() - began >= 0.5


@SLOW
def test_a_cpu_watch_counts_the_seconds_a_run_was_starved(started):
    for _ in range(CROWD):
        started(BUSY)
    victim = started(BUSY)
    watch = processes.CpuWatch(victim)  # one sample a second, as in the kernel run
    time.sleep(4)
    victim.kill()
    victim.wait()
    assert 2.0 <= watch.join() <= 4.5  # (the looks themselves wait for a CPU meanwhile)


# -- what the host decides from a job's data --------------------------------------------------

MODULE = Module(
    "06_optimizers",
    "Optimizers",
    Path("optimizers_dev.py"),
    "optimizers",
    Path("optimizers.py"),
    (),
)
LIMITS = DisplayLimits(max_cells=100, max_outputs_per_cell=3, max_output_chars=200, max_image_kb=1)


def _notebook():
    graded = nbformat.v4.new_code_cell("assert step_lr(1.0, 3, 2, 0.5) == 0.5")
    graded.id = "t"
    graded.metadata["nbgrader"] = {
        "grade": True,
        "solution": False,
        "locked": True,
        "points": 3,
        "grade_id": "step_lr_values",
        "schema_version": 3,
    }
    return nbformat.v4.new_notebook(cells=[graded])


def _result(**fields) -> JobResult:
    """The judge passed the cell; the kernel run interrupted it at its time limit."""
    executed = json.loads(nbformat.writes(_notebook()))
    executed["cells"][0]["execution_count"] = 1
    executed["cells"][0]["outputs"] = [
        {"output_type": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": []}
    ]
    verdicts = [{"grade_id": "step_lr_values", "points": 3.0, "passed": True, "message": ""}]
    return JobResult(
        json.dumps({"error": "", "notebook": executed}), "", verdicts, [], "bubblewrap", **fields
    )


def test_points_lost_in_a_starved_kernel_run_make_the_outcome_failed():
    busy = "the grading machine was busy: the kernel run was starved of CPU for 9 s"
    outcome, _ = decide(
        "s", MODULE, _notebook(), _notebook(), [], _result(kernel_busy=busy), LIMITS
    )
    assert (outcome.status, outcome.score) == ("failed", None)
    assert outcome.reason.startswith(busy) and "--retry-failed" in outcome.reason


def test_the_same_loss_in_a_run_that_was_not_starved_is_graded():
    outcome, _ = decide("s", MODULE, _notebook(), _notebook(), [], _result(), LIMITS)
    assert (outcome.status, outcome.score, outcome.cells[0].judge) == ("graded", 0.0, True)


def test_a_kernel_run_stopped_at_its_memory_limit_stays_graded_with_a_note():
    result = _result(memory_limit_hit=["kernel"], memory_mb={"kernel": 2500.0, "judge": 16.0})
    result.executed = json.dumps(
        {
            "error": "DeadKernelError: Kernel died",
            "notebook": json.loads(result.executed)["notebook"],
        }
    )
    outcome, _ = decide("s", MODULE, _notebook(), _notebook(), [], result, LIMITS)
    assert (outcome.status, outcome.score) == ("graded", 0.0)
    assert (
        outcome.reason
        == "the kernel run held more than memory_limit_mb with all its processes and was stopped"
    )
    assert outcome.memory_mb == {"kernel": 2500.0, "judge": 16.0}


def test_a_starved_kernel_run_that_left_the_judge_no_time_makes_the_outcome_failed():
    """The machine kept the kernel run waiting until the submission's time was up, so the judge
    ran nothing: the lost points are the machine's, not the student's."""
    busy = "the grading machine was busy: the kernel run was starved of CPU for 300 s"
    result = _result(kernel_busy=busy)
    result.execution_note = "the kernel run was stopped after 400 s"
    result.verdicts = [
        {
            "grade_id": "step_lr_values",
            "points": 3.0,
            "passed": False,
            "message": "not run: the submission used up submission_timeout_seconds",
        }
    ]
    outcome, _ = decide("s", MODULE, _notebook(), _notebook(), [], result, LIMITS)
    assert (outcome.status, outcome.score) == ("failed", None) and outcome.reason.startswith(busy)


def test_a_kernel_that_never_started_is_the_machines_failure_and_one_that_died_is_graded():
    """The runner reports a started kernel on a pipe of its own before any cell runs: without
    that, no code of the submission ran, and nothing is scored."""
    dead = _result(kernel_started=False)
    dead.executed = json.dumps({"error": "NoSuchKernel: python3", "notebook": None})
    outcome, _ = decide("s", MODULE, _notebook(), _notebook(), [], dead, LIMITS)
    assert (outcome.status, outcome.score) == ("failed", None)
    assert outcome.reason == (
        "the notebook's kernel did not start (the kernel run returned no readable notebook)"
    )
    dead.kernel_started = True  # it started, then the submission's code ended it
    outcome, _ = decide("s", MODULE, _notebook(), _notebook(), [], dead, LIMITS)
    assert (outcome.status, outcome.score) == ("graded", 0.0)
    assert outcome.reason == (
        "the kernel run returned no readable notebook: the cells it did not run score 0"
    )
