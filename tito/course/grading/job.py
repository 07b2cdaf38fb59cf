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
The job needs no shared file system, so `run_in_process` runs it the same in a process of its
own, forked by a warm job process (`python -m tito.course.grading.job`: a Job as a line of JSON
on stdin, the JobResult on stdout), on this machine or on a Dask worker (cluster.py). Scores
are not decided here: the host combines the verdicts (host.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
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
    batch: str = ""  # the autograde run it is part of: a warm job process serves one batch


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
    """Run `job` in a process of its own: a child forked for it by a warm job process.

    The job's trusted code executes the instructor's test cells; a process of its own keeps
    that apart from whatever calls it (the host's thread pool, a Dask worker). `program` is
    what Python runs (benchmarks/autograde.py runs a variant to measure what the bounds cost).
    """
    limits = GradingLimits(**job.limits)
    # The job enforces the submission's time limit itself; this one only catches a grader bug.
    timeout = 2 * limits.submission_timeout_seconds + 60
    request = json.dumps(asdict(job)).encode() + b"\n"
    key = (job.batch, *program)
    server = _take_server(key, program)
    try:
        try:
            server.send(request)
        except OSError:  # it ended while idle (killed from outside): the job has not begun
            server.kill()
            server = _WarmJobProcess(program)
            server.send(request)
        status, reply = server.receive(time.monotonic() + timeout)
    except TimeoutError:
        server.kill()
        return _failure(f"the grading job did not finish within {timeout} s")
    except OSError as e:
        return _failure(f"the grading job process stopped: {e}{server.kill()}")
    _give_back(key, server)
    if status != 0:
        tail = reply.decode("utf-8", "replace").strip().splitlines() or [f"exit status {status}"]
        return _failure(f"the grading job failed: {tail[-1][:300]}")
    return JobResult(**json.loads(reply))


# -- the warm job process -----------------------------------------------------------------
# Python, numpy and the grader take about 0.35 s to start. A warm job process starts once and
# forks a child for each job: the child is the job's own process, as fresh as a new one (the
# warm process runs no job code and keeps nothing of a child's). One job at a time each; the
# host (or Dask worker) keeps one per job it runs at once, for one batch: they end with the
# batch, with the host (the end of their input), or when a later batch finds them idle.

_REPLY_HEADER = struct.Struct("<iQ")  # the child's exit status, the length of what follows
_idle: dict[tuple[str, ...], list[_WarmJobProcess]] = {}
_idle_lock = threading.Lock()


class _WarmJobProcess:
    def __init__(self, program: tuple[str, ...]):
        # -I ignores PYTHON* variables, so -B is needed to keep the job from writing bytecode
        # next to the installed sources (it writes nothing but its result).
        argv = [
            "prlimit",
            f"--as={TRUSTED_MEMORY_MB << 20}:unlimited",
            "--",
            sys.executable,
            "-I",
            "-B",
            *program,
        ]
        env = {**os.environ, **SINGLE_THREADED, "MPLBACKEND": "Agg"}
        self.errors = tempfile.TemporaryFile()  # why it ended, if it does
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors, env=env
        )

    def send(self, request: bytes) -> None:
        try:
            self.proc.stdin.write(request)
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise OSError("it ended before it replied") from None

    def receive(self, deadline: float) -> tuple[int, bytes]:
        fd = self.proc.stdout.fileno()
        header = _read_exactly(fd, _REPLY_HEADER.size, deadline)
        status, length = _REPLY_HEADER.unpack(header)
        return status, _read_exactly(fd, length, deadline)

    def kill(self) -> str:
        """End it and the job it runs (the child dies with it, and its jails with the child).
        Returns the last line it wrote to stderr, as ": <line>" ("" if none)."""
        self.proc.kill()
        self.proc.wait()
        with contextlib.suppress(OSError):  # what is still buffered for it cannot be written
            self.proc.stdin.close()
        self.proc.stdout.close()
        self.errors.seek(0)
        lines = self.errors.read()[-4096:].decode("utf-8", "replace").strip().splitlines()
        self.errors.close()
        return f": {lines[-1][:300]}" if lines else ""


def _read_exactly(fd: int, n: int, deadline: float) -> bytes:
    chunks, got = [], 0
    while got < n:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise OSError("it ended before it replied")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _take_server(key: tuple[str, ...], program: tuple[str, ...]) -> _WarmJobProcess:
    """An idle warm process of this batch and program, or a new one. Idle ones of other batches
    end here: their batch is over (its host may have been killed before it could end them), or
    another host grades beside this one on the same worker and starts them again as needed."""
    with _idle_lock:
        stale = [s for k in [k for k in _idle if k != key] for s in _idle.pop(k)]
        idle, found = _idle.get(key, []), None
        while idle and found is None:
            server = idle.pop()
            if server.proc.poll() is None:
                found = server
            else:
                stale.append(server)
    for server in stale:
        server.kill()
    return found or _WarmJobProcess(program)


def _give_back(key: tuple[str, ...], server: _WarmJobProcess) -> None:
    with _idle_lock:
        _idle.setdefault(key, []).append(server)


def close_warm_processes() -> None:
    """End the idle warm job processes (they also end with this process)."""
    with _idle_lock:
        servers = [s for idle in _idle.values() for s in idle]
        _idle.clear()
    for server in servers:
        server.kill()


def serve() -> int:
    """The warm job process: a job as a line of JSON on stdin, for each a forked child that runs
    it; its reply on stdout: the child's exit status, then its JobResult (JSON) or its error."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    while (request := requests.readline()) and _serve_one(request, requests.fileno(), replies):
        pass
    return 0


def _serve_one(request: bytes, host: int, replies) -> bool:
    """Fork a child for one job and send its reply; False when the host is gone. The job's data
    lives in this call only, so the next child is forked with none of it."""
    result_r, result_w = os.pipe()
    with tempfile.TemporaryFile() as errors:
        pid = os.fork()
        if pid == 0:  # the job's process
            os.close(result_r)
            _job_child(request, result_w, errors.fileno())
        os.close(result_w)
        reply = _collect(pid, result_r, host)
        if reply is None:  # the host is gone: so is its job
            return False
        status, result = reply
        if status != 0:
            errors.seek(0)
            result = errors.read()[-4096:]
    replies.write(_REPLY_HEADER.pack(status, len(result)) + result)
    replies.flush()
    return True


def _job_child(request: bytes, result_w: int, errors: int) -> None:
    """Run one job in the forked child; never returns."""
    status = 1
    try:
        _die_with_parent()
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)  # the host's requests are the warm process's, not the job's
        for fd in (1, 2):  # a job prints nothing; a failure's traceback goes to `errors`
            os.dup2(errors, fd)
        result = json.dumps(asdict(run(Job(**json.loads(request))))).encode()
        with os.fdopen(result_w, "wb") as out:
            out.write(result)
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(status)


def _die_with_parent() -> None:
    """SIGKILL this process when the warm job process ends (prctl PR_SET_PDEATHSIG)."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the call
        os._exit(1)


def _collect(pid: int, result_r: int, host: int) -> tuple[int, bytes] | None:
    """The child's exit status and result, or None (child killed) when the host has gone."""
    chunks = []
    while True:
        readable = select.select([result_r, host], [], [])[0]
        if host in readable:  # the host sends nothing while a job runs: this is its end
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(result_r)
            return None
        chunk = os.read(result_r, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(result_r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


def _failure(reason: str) -> JobResult:
    return JobResult("", "", [], [], "", failure=reason)


def main() -> int:
    return serve()


if __name__ == "__main__":
    sys.exit(main())
