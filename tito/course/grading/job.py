"""One submission's grading job: data in, data out.

In (`Job`): the submission as nbgrader prepared it (locked cells restored from the
gradebook, hidden test regions removed by the host), the instructor notebook (tests, hidden tests
included), the files of the
course package that a submission may import, and the limits. Out (`JobResult`): what the
jailed kernel run returned (untrusted: outputs for the feedback) and the judge's verdicts.

Two stages, both with the submission's code in a jail (jail.py):
1. the kernel run: nbclient executes the notebook (jailed/execute.py);
2. the judge: the instructor's test cells run here, in this trusted process, against the
   student's functions in a jailed process (judge.py, jailed/sandbox.py).
The job needs no shared file system, so `run_in_process` runs it the same in a fresh process
(`python -m tito.course.grading.job`, a Job as JSON on stdin, the JobResult on stdout) on
this machine or on a Dask worker (cluster.py). Scores are not decided here: the host
combines the verdicts (host.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .jail import (
    JAILED_PACKAGE,
    SINGLE_THREADED,
    UNBOUNDED_KERNEL_MEMORY,
    GradingLimits,
    Jail,
    JailError,
    kernel_memory_bounded,
    stage_files,
)
from .judge import MachineError, judge
from .processes import CpuWatch

# The address space of the job's own (trusted) process: Python, numpy, the notebooks, the
# kernel run's output (at most max_output_mb, held a few times while it is parsed) and the judge's
# replies (each bounded by its request, judge.py). Reached only by a grader bug: the job fails.
# A soft limit: the jails it starts set their own.
TRUSTED_MEMORY_MB = 2048


@dataclass
class Job:
    student: str
    module: str
    notebook: str  # the prepared submission, notebook JSON
    instructor: str  # the instructor notebook, notebook JSON
    package: dict[
        str, str
    ]  # path inside the package folder -> source, e.g. "tinytorch/core/tensor.py"
    tensor_class: str  # "module:Class" of the package whose objects cross the jail as data
    limits: dict[str, int]  # the fields of settings.GradingLimits
    jail: bool = True  # False only with --unsafe-no-jail
    mistakes: str = ""  # the module's catalogue of known mistakes (YAML), for the judge's diagnosis
    # Without a control group the jail's memory limit leaves out kernel memory (jail.py): the
    # job refuses to grade that way unless the instructor accepted it.
    accept_unbounded_kernel_memory: bool = False


@dataclass
class JobResult:
    executed: (
        str  # the kernel run's output as returned by the jail (JSON text, untrusted); "" if none
    )
    execution_note: str  # why the kernel run returned nothing usable, if so
    verdicts: list[dict]  # the judge's: grade_id, points, passed, message
    cell_errors: list[str]  # errors raised by the student's exported cells in the judge's process
    isolation: str
    failure: str = ""  # the job could not finish for a reason that is not the submission's
    seconds: dict[str, float] = field(default_factory=dict)
    memory_mb: dict[str, float] = field(
        default_factory=dict
    )  # stage -> the most its processes held at once
    memory_limit_hit: list[str] = field(
        default_factory=list
    )  # stages killed for passing memory_limit_mb
    kernel_busy: str = (
        ""  # the kernel run was starved of CPU: its timed-out cells may be the machine's doing
    )
    kernel_started: bool = True  # False: the kernel never started (no submission code ran)
    diagnosis: dict[str, list[str]] = field(
        default_factory=dict
    )  # region -> known mistakes it behaves like


def _kernel_run(jail: Jail, notebook: str, deadline: float) -> tuple[str, str, str, bool]:
    """(what the jailed run printed, a note when it printed nothing usable, a note when the
    machine starved it of CPU for more than a quarter of a cell's time limit, whether the
    kernel started: the runner says so on a pipe of its own before any cell runs)."""
    limit = jail.limits.max_output_mb << 20
    started_r, started_w = os.pipe()
    argv = [
        sys.executable,
        "-s",
        "-m",
        f"{JAILED_PACKAGE}.execute",
        notebook,
        str(jail.limits.cell_timeout_seconds),
        str(started_w),
    ]
    # The result goes to a file of the job's (not visible inside the jail); the file size
    # limit of the jail bounds it.
    with tempfile.TemporaryFile(dir=jail.workdir) as out:
        try:
            proc = jail.popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.DEVNULL,
                pass_fds=(started_w,),
            )
        finally:
            os.close(started_w)
        cpu = CpuWatch(proc)
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            note = ""
        except subprocess.TimeoutExpired:
            note = f"the kernel run was stopped after {jail.limits.submission_timeout_seconds} s"
        proc.kill()  # the jail's first process: its PID namespace, and all in it, end with it
        proc.wait()
        starved = cpu.join()
        # Every writer is gone with the jail: this read cannot wait.
        started = os.read(started_r, 1) == b"1"
        os.close(started_r)
        out.seek(0)
        data = out.read(limit + 1)
    busy = (
        f"the grading machine was busy: the kernel run was starved of CPU for {starved:.0f} s"
        if starved > jail.limits.cell_timeout_seconds / 4
        else ""
    )
    if len(data) > limit:
        return (
            "",
            f"the kernel run returned more than {jail.limits.max_output_mb} MB (max_output_mb)",
            busy,
            started,
        )
    return data.decode("utf-8", errors="replace"), note, busy, started


def run(job: Job) -> JobResult:
    limits = GradingLimits(**job.limits)
    if job.jail and not job.accept_unbounded_kernel_memory and not kernel_memory_bounded():
        return _failure(f"this machine cannot grade: {UNBOUNDED_KERNEL_MEMORY}")
    started = time.monotonic()
    deadline = started + limits.submission_timeout_seconds
    with tempfile.TemporaryDirectory(prefix="tito-job-") as workdir:
        # One jail per stage, each with inputs of its own and nothing of the other's.
        kernel_jail, judge_jail = (
            Jail(limits, Path(workdir) / stage, enabled=job.jail) for stage in ("kernel", "judge")
        )
        # The trusted side imports the tensor class from the same copy of the package as the
        # jails, whatever this machine (a Dask worker) has installed.
        trusted = Path(workdir) / "trusted"
        stage_files(trusted, job.package)
        sys.path.insert(0, str(trusted))
        for jail in (kernel_jail, judge_jail):
            jail.add_package(job.package)
        try:
            executed, note, busy, kernel_started = _kernel_run(
                kernel_jail,
                kernel_jail.add_input("submission.ipynb", job.notebook.encode()),
                deadline,
            )
            kernel_done = time.monotonic()
            report = judge(
                nbformat.reads(job.instructor, as_version=4),
                nbformat.reads(job.notebook, as_version=4),
                judge_jail,
                deadline,
                tensor_class=job.tensor_class,
                mistakes=job.mistakes,
            )
        except (MachineError, JailError) as e:
            return JobResult("", "", [], [], kernel_jail.isolation, failure=str(e))
        finally:
            kernel_jail.close()
            judge_jail.close()
        seconds = {"kernel": kernel_done - started, "judge": time.monotonic() - kernel_done}
        jails = {"kernel": kernel_jail, "judge": judge_jail}
        return JobResult(
            executed,
            note,
            [asdict(v) for v in report.verdicts],
            report.student_cell_errors,
            judge_jail.isolation,
            seconds=seconds,
            memory_mb={stage: round(j.peak_memory_mb, 1) for stage, j in jails.items()},
            memory_limit_hit=[stage for stage, j in jails.items() if j.memory_hit],
            kernel_busy=busy,
            kernel_started=kernel_started,
            diagnosis=report.diagnosis,
        )


def run_in_process(
    job: Job, program: tuple[str, ...] = ("-m", "tito.course.grading.job")
) -> JobResult:
    """Run `job` in a fresh process (python -m tito.course.grading.job) that dies with this one.

    The job's trusted code executes the instructor's test cells; a process of its own keeps
    that apart from whatever calls it (the host's thread pool, a Dask worker). `program` is
    what Python runs (benchmarks/autograde.py runs a variant to measure what the bounds cost).
    """
    limits = GradingLimits(**job.limits)
    env = {**os.environ, **SINGLE_THREADED, "MPLBACKEND": "Agg"}
    # -I ignores PYTHON* variables, so -B is needed to keep the job from writing bytecode
    # next to the installed sources (it writes nothing but its result).
    # The job enforces the submission's time limit itself; this one only catches a grader bug.
    timeout = 2 * limits.submission_timeout_seconds + 60
    argv = [
        "setpriv",
        "--pdeathsig",
        "KILL",
        "--",
        "prlimit",
        f"--as={TRUSTED_MEMORY_MB << 20}:unlimited",
        "--",
        sys.executable,
        "-I",
        "-B",
        *program,
    ]
    try:
        proc = subprocess.run(
            argv,
            input=json.dumps(asdict(job)),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return _failure(f"the grading job did not finish within {timeout} s")
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return _failure(f"the grading job failed: {tail[:300]}")
    return JobResult(**json.loads(proc.stdout))


def _failure(reason: str) -> JobResult:
    return JobResult("", "", [], [], "", failure=reason)


def main() -> int:
    job = Job(**json.load(sys.stdin))
    json.dump(asdict(run(job)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
