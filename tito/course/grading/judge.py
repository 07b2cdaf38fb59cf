"""Run a module's graded test cells in this (trusted) process against the student's code.

The trusted namespace is built from the instructor notebook's exported cells; every
function that holds a solution region is then replaced by a proxy that calls the
student's version in a jailed process (jailed/sandbox.py) and mirrors the results back
(jailed/protocol.py). Each graded cell runs in a fresh copy of that namespace, after the
notebook's test-support cells (shared helpers). The test and support cells come from the
instructor notebook too, hidden tests included, so nothing the student wrote or edited
decides how their code is judged. A support cell may name functions that run in the student's
process instead (a training loop: thousands of calls of the student's code, one call over the
wire); what they return is data that the trusted support code checks, as it checks any answer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import nbformat
import numpy as np

from ..notebooks import (
    SOLUTION_BEGIN,
    is_export_cell,
    is_grade_cell,
    is_test_support_cell,
    student_functions,
    student_process_functions,
)
from . import diagnosis
from .jail import JAILED_PACKAGE, Jail, JailError
from .jailed.protocol import Mirror, WireError, load_class, receive, send
from .messages import holds_hidden_tests, parts, shown
from .processes import Allowance, Starved, tree

NOT_RUN_IN_TIME = "not run: the submission used up submission_timeout_seconds"
SANDBOX_START_SECONDS = 60  # Python, numpy and matplotlib start, before any student code
# The largest reply a valid answer can need: the call's arguments changed in place, a few new
# arrays shaped like them (state buffers) and a return value. Anything longer is refused
# before it is read, so a reply cannot make this trusted process grow.
REPLY_BYTES_PER_REQUEST_BYTE = 4
REPLY_BYTES_EXTRA = 1 << 20


@dataclass
class CellVerdict:
    grade_id: str
    points: float
    passed: bool
    message: str = ""


@dataclass
class JudgeReport:
    verdicts: list[CellVerdict]
    student_cell_errors: list[str] = field(default_factory=list)
    # solution cell grade id -> ids of the known mistakes its function behaves like ([]: none known)
    diagnosis: dict[str, list[str]] = field(default_factory=dict)


class StudentProcess:
    """The student's exported cells in a jailed process, then the `support` cells that run
    there (the instructor's, e.g. a training loop): started lazily, restarted after a crash or a
    timeout (each start is a fresh jail)."""

    def __init__(
        self,
        cells: list[str],
        cell_timeout: float,
        jail: Jail,
        deadline: float = float("inf"),
        *,
        tensor_class: str,
        support: list[str] = (),
    ):
        self.cells, self.timeout, self.jail, self.deadline = cells, cell_timeout, jail, deadline
        self.support = list(support)
        self.tensor_class = (
            tensor_class  # "module:Class", imported on each side from its copy of the package
        )
        self.proc = None
        self.broken = ""  # why the student's cells could not be run; later calls fail at once
        self.machine_busy = ""  # a call the machine, not the code, made too slow
        self.starved = 0.0  # seconds the machine kept the last call waiting for a CPU
        self.starved_in_all = 0.0  # ... and every call so far
        self.cell_errors: list[str] = []
        # One call at a time crosses the wire: trusted code may call from two threads (the
        # optimizers give half of a large step to a helper thread of that step).
        self.lock = threading.Lock()
        # The jail dies with the thread that started it (bubblewrap's --die-with-parent is a
        # parent-death signal, sent when that thread ends), so every start is made from this
        # thread, which lives as long as this object, whichever thread makes the call.
        self._starter = ThreadPoolExecutor(1, thread_name_prefix="student-process")
        code = {"cells": cells, "support": self.support}
        self._code = jail.add_input("student-code.json", json.dumps(code).encode())

    def start(self) -> None:
        req_r, self.req_w = os.pipe()
        self.resp_r, resp_w = os.pipe()
        argv = [
            sys.executable,
            "-s",
            "-m",
            f"{JAILED_PACKAGE}.sandbox",
            self._code,
            str(req_r),
            str(resp_w),
            str(self.timeout),
            self.tensor_class,
        ]
        try:
            self.proc = self._starter.submit(
                self.jail.popen,
                argv,
                pass_fds=(req_r, resp_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ).result()
        except (OSError, JailError) as e:  # no process or no control group: the machine's problem
            for fd in (self.req_w, self.resp_r):
                os.close(fd)
            raise SandboxSetupError(f"the grading sandbox could not start: {e}") from None
        finally:
            os.close(req_r)
            os.close(resp_w)
        self.mirror = Mirror(
            parity=0, tensor_class=load_class(self.tensor_class), fixed_shapes=True
        )
        try:
            hello, _ = receive(
                self.resp_r, time.monotonic() + SANDBOX_START_SECONDS, REPLY_BYTES_EXTRA
            )
            if hello != {"hello": True}:
                raise WireError("unexpected first message")
            # The process that runs the calls: the end of the jail's chain, before any
            # student code has run (it runs next).
            self.main_pid = tree(self.proc.pid)[-1]
            os.set_blocking(self.req_w, False)  # a process that stops reading cannot hold a send
        except Exception as e:
            self.stop()
            raise SandboxSetupError(f"the grading sandbox could not start: {e}") from None
        seconds = self.timeout * max(1, len(self.cells) + len(self.support))
        running = Allowance(self.proc.pid, seconds, latest=self.deadline, main=self.main_pid)
        try:
            header, _ = receive(
                self.resp_r, running.deadline, REPLY_BYTES_EXTRA, overtime=running.extend
            )
        except (
            Exception
        ) as e:  # unreadable, too slow, or gone: nothing of the student's can be judged
            self.broken = f"your exported cells did not finish running: they {self._stopped(e)}"
            raise StudentError(self.broken) from None
        finally:
            self.starved_in_all += running.starved
        self.cell_errors = [str(x)[:500] for x in header.get("cell_errors", [])][:20]

    def _stopped(self, error: Exception) -> str:
        """Stop the process after `error`; say what the code did (a phrase), or raise MachineBusy
        when the machine, not the code, made it too slow."""
        proc = self.proc
        self.stop()
        if isinstance(error, Starved):
            # Kept as well as raised: a test cell that catches every exception cannot hide it.
            self.machine_busy = (
                f"the student's code did not answer in time, and {error}; grade it again "
                "(autograde --retry-failed) when the machine is less loaded"
            )
            raise MachineBusy(self.machine_busy)
        if self.jail.ended_by_memory(proc):
            return (
                f"held more than memory_limit_mb ({self.jail.limits.memory_limit_mb} MB) "
                "with the processes "
                "it started, and was stopped"
            )
        if isinstance(error, TimeoutError):
            return "did not return within the time limit"
        return f"stopped the process running it ({type(error).__name__}: {error})"

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            for fd in (self.req_w, self.resp_r):
                os.close(fd)
            self.proc = None

    def close(self) -> None:
        self.stop()
        self._starter.shutdown()  # its thread ends; a later call starts afresh, with a new one
        self._starter = ThreadPoolExecutor(1, thread_name_prefix="student-process")

    def call(self, name: str, args, kwargs, deadline: float, returns=..., shaped: bool = True):
        """The student's `name(*args, **kwargs)`; `returns` is the reference's return annotation
        (float or None), which the reply must match (anything else: not checked). A reply's
        arrays are shaped like the call's own, unless not `shaped` (a support function's: the
        trusted code that called it checks what it returns). Such a function's result is new
        data, built apart from every object the judge has shown the process, and what it did to
        its arguments is not brought back."""
        self.starved = 0.0
        if self.broken:
            raise StudentError(self.broken)
        if self.proc is None:
            self.start()
        arrays: list = []
        header = {
            "fn": name,
            "args": [self.mirror.encode(a, arrays) for a in args],
            "kwargs": {k: self.mirror.encode(v, arrays) for k, v in kwargs.items()},
        }
        # A call has the cell's time left (at most a cell's), and more while the machine keeps it
        # waiting for a CPU (processes.Allowance).
        allowance = Allowance(
            self.proc.pid,
            min(deadline, time.monotonic() + self.timeout) - time.monotonic(),
            latest=self.deadline,
            main=self.main_pid,
        )
        try:
            sent = send(self.req_w, header, arrays, allowance.deadline, allowance.extend)
            reply, out = receive(
                self.resp_r,
                allowance.deadline,
                REPLY_BYTES_PER_REQUEST_BYTE * sent + REPLY_BYTES_EXTRA,
                overtime=allowance.extend,
            )
        except Exception as e:  # too slow, out of step or gone: the next call starts afresh
            raise StudentError(f"{name}() {self._stopped(e)}") from None
        finally:
            self.starved = allowance.starved
            self.starved_in_all += self.starved
        if not reply.get("ok"):
            # Common built-in errors keep their type, so tests of error behaviour work across
            # the boundary; anything else (custom classes, SystemExit, ...) is a StudentError.
            etype = _REBUILT_ERRORS.get(str(reply.get("type")))
            if etype is not None:
                raise etype(str(reply.get("message", "")))
            raise StudentError(f"{name}() raised {reply.get('error', 'an error')}")
        # A valid reply holds arrays shaped like the call's own (changed in place, state buffers).
        shapes = {a.shape for a in arrays}
        stray = next((a.shape for a in out if shaped and a.shape not in shapes), None)
        if stray is not None:
            raise StudentError(
                f"{name}() replied with an array of shape {stray}, which none of its arguments has"
            )
        seen: set = set()  # one message: each list or dict in it once (protocol.Mirror.decode)
        try:
            for e in reply.get("sync", []) if shaped else []:
                self.mirror.decode(e, out, seen)
        except Exception as e:
            raise StudentError(f"{name}() left its arguments in an unusable state: {e}") from None
        ret = reply.get("ret")
        if returns is float:  # JSON numbers only: an array or a container is not a float
            if type(ret) not in (int, float):
                raise StudentError(f"{name}() returned {_described(ret)}; it returns a float")
            return float(ret)
        if returns is None and ret is not None:
            raise StudentError(f"{name}() returned {_described(ret)}; it returns nothing (None)")
        mirror = self.mirror if shaped else Mirror(0, self.mirror.tensor_class, fixed_shapes=True)
        try:
            return mirror.decode(ret, out, seen)
        except Exception as e:
            raise StudentError(f"{name}() returned something unusable: {e}") from None


def _described(encoded) -> str:
    """What a returned value was, from its encoding (never decoded)."""
    if isinstance(encoded, dict):
        kind = next((k for k in ("nd", "tensor", "tuple", "list", "dict") if k in encoded), "")
        return {
            "nd": "an array",
            "tensor": "a Tensor",
            "tuple": "a tuple",
            "list": "a list",
            "dict": "a dict",
        }.get(kind, "an unknown value")
    return f"a {type(encoded).__name__}" if not isinstance(encoded, bool) else "a bool"


class MachineError(Exception):
    """A problem of the grading machine, not of the submission: the job fails, nothing is scored."""


class SupportCellError(MachineError):
    """The instructor notebook's test-support cells raised: nothing can be judged, and it is not the
    student's doing."""


class SandboxSetupError(MachineError):
    """The sandbox failed before any student code ran."""


class MachineBusy(MachineError):
    """The student's code got too little CPU to finish in time."""


class StudentError(Exception):
    """The student's code raised, returned something unusable, or could not be run.

    Not a built-in type, so a test that expects e.g. a RuntimeError is not satisfied by it.
    """


_REBUILT_ERRORS = {
    e.__name__: e
    for e in [
        ValueError,
        TypeError,
        RuntimeError,
        NotImplementedError,
        ArithmeticError,
        ZeroDivisionError,
        FloatingPointError,
        OverflowError,
        IndexError,
        KeyError,
        AttributeError,
        NameError,
        AssertionError,
    ]
}


def _proxy(sp: StudentProcess, name: str, clock: dict, returns=..., shaped: bool = True):
    def call(*args, **kwargs):
        with sp.lock:
            try:
                return sp.call(name, args, kwargs, clock["deadline"], returns, shaped)
            except Exception as e:  # named in a message that may not show the text (messages.py)
                e.student_function = name
                raise
            finally:  # the time the machine kept the call waiting is not taken from the cell's
                clock["deadline"] += sp.starved

    call.__name__ = call.__qualname__ = name
    return call


def judge(
    reference: nbformat.NotebookNode,
    submission: nbformat.NotebookNode,
    jail: Jail,
    deadline: float = float("inf"),
    *,
    tensor_class: str,
    mistakes: str = "",
) -> JudgeReport:
    """Score every graded test cell of `reference` against the student code in `submission`.

    Cells not finished by `deadline` (the submission's time limit, time.monotonic()) fail.
    Objects of `tensor_class` ("module:Class", settings.ini [package]) cross the jail as data.
    With a catalogue of known `mistakes` (YAML text, diagnosis.py) and a cell failed, each
    solution region's function is probed and the mistake it behaves like named.
    """
    ref_exports = [c for c in reference.cells if is_export_cell(c)]
    names = student_functions(ref_exports)
    grade_cells = [c for c in reference.cells if is_grade_cell(c) and c.cell_type == "code"]
    support_cells = [c for c in reference.cells if is_test_support_cell(c)]
    support = [compile(c.source, f"<test support {c.get('id')}>", "exec") for c in support_cells]
    beside = [c for c in support_cells if student_process_functions(c)]
    for c in beside:  # its source goes into the jail: nothing in it may be secret
        if holds_hidden_tests(c.source) or SOLUTION_BEGIN in c.source:
            raise SupportCellError(
                f"the test-support cell {c.get('id')!r} runs in the student's process "
                "(in_student_process) but holds hidden tests or a solution"
            )
    student_cells = [
        c.source for c in submission.cells if is_export_cell(c) and not is_grade_cell(c)
    ]

    trusted: dict = {"__name__": "__reference__"}
    for c in ref_exports:
        exec(compile(c.source, f"<reference cell {c.get('id')}>", "exec"), trusted)

    cell_timeout = jail.limits.cell_timeout_seconds
    sp = StudentProcess(
        student_cells,
        cell_timeout,
        jail,
        deadline,
        tensor_class=tensor_class,
        support=[c.source for c in beside],
    )
    clock = {"deadline": 0.0}
    for name in names:
        trusted[name] = _proxy(sp, name, clock, trusted[name].__annotations__.get("return", ...))
    # Put in place after the support cells have run (which define them too), in each namespace.
    remote = {
        name: _proxy(sp, name, clock, shaped=False)
        for c in beside
        for name in student_process_functions(c)
    }
    # Messages print every float with the digits that identify it (as the notebook does).
    with np.printoptions(floatmode="unique"):
        try:
            report = _run_cells(
                grade_cells, support, remote, trusted, sp, clock, cell_timeout, deadline
            )
            failed = {v.grade_id for v in report.verdicts if not v.passed}
            if mistakes and failed:
                # In a fresh process: what the graded cells left in the student's module state
                # (a cache, a counter, hidden inputs it kept) must not decide or hear anything.
                sp.stop()
                try:
                    report.diagnosis = _diagnose(
                        reference,
                        mistakes,
                        {n: trusted[n] for n in names},
                        failed,
                        sp,
                        clock,
                        cell_timeout,
                        deadline,
                    )
                except MachineError:  # too busy: the verdicts, all decided, stand without it
                    report.diagnosis = {}
            return report
        finally:
            sp.close()


def _diagnose(
    reference,
    mistakes: str,
    student: dict,
    failed: set[str],
    sp: StudentProcess,
    clock: dict,
    cell_timeout: float,
    deadline: float,
) -> dict[str, list[str]]:
    def before_region(region: str) -> None:
        # Each region's probes get a cell's time, within the submission's.
        clock["deadline"] = min(time.monotonic() + cell_timeout, deadline)

    def stop() -> bool:  # the submission's time is up, or its code cannot be run any more
        return bool(sp.broken or sp.machine_busy) or time.monotonic() >= min(
            clock["deadline"], deadline
        )

    found = diagnosis.diagnose(
        reference,
        diagnosis.load(mistakes),
        student,
        passthrough=(MachineError,),
        unanswered=(StudentError,),
        before_region=before_region,
        stop=stop,
        failed=failed,
    )
    return {region: d["ids"] for region, d in found.items()}


def _namespace(trusted: dict, support: list, remote: dict) -> dict:
    """A fresh copy of the trusted namespace with the test-support cells run in it, and the
    functions that run in the student's process (`remote`) in place of their own."""
    namespace = dict(trusted)
    try:
        for code in support:
            exec(code, namespace)
    except Exception as e:
        raise SupportCellError(
            f"the instructor notebook's test-support cells raised {type(e).__name__}: {e}"
        ) from None
    namespace.update(remote)
    return namespace


class _Cells:
    """Runs parts of graded cells against the student's process and keeps each cell's verdict."""

    def __init__(self, support, remote, trusted, sp, clock, cell_timeout, deadline):
        self.support, self.remote, self.trusted = support, remote, trusted
        self.sp, self.clock = sp, clock
        self.cell_timeout, self.deadline = cell_timeout, deadline
        self.verdicts: dict[int, CellVerdict] = {}

    def run(self, i: int, md: dict, namespace: dict, cut: list, after_hidden: bool) -> dict | None:
        """Run `cut` (parts of cell `i`) in `namespace` (a fresh one when empty); record the
        verdict when the cell fails or has run to its end. The namespace, or None on a failure."""
        points = float(md.get("points", 0))
        self.clock["deadline"] = min(time.monotonic() + self.cell_timeout, self.deadline)
        if time.monotonic() >= self.deadline:
            if self.sp.starved_in_all:  # the machine took part of the submission's time
                raise MachineBusy(
                    f"the submission's time ran out after the machine kept its calls waiting "
                    f"for a CPU for {self.sp.starved_in_all:.0f} s; grade it again "
                    "(autograde --retry-failed) when the machine is less loaded"
                )
            self.verdicts[i] = CellVerdict(md["grade_id"], points, False, NOT_RUN_IN_TIME)
            return None
        in_hidden = False
        try:
            namespace = namespace or _namespace(self.trusted, self.support, self.remote)
            for code, hidden in cut:
                in_hidden = hidden
                exec(code, namespace)
        except MachineError:
            raise  # not the student's doing: the submission is recorded as failed, with why
        except Exception as e:
            message = shown(e, in_hidden, after_hidden)
            self.verdicts[i] = CellVerdict(md["grade_id"], points, False, message)
            namespace = None
        if self.sp.machine_busy:
            raise MachineBusy(self.sp.machine_busy)
        if namespace is not None:
            self.verdicts[i] = CellVerdict(md["grade_id"], points, True)
        return namespace


def _run_cells(
    grade_cells,
    support: list,
    remote: dict,
    trusted: dict,
    sp: StudentProcess,
    clock: dict,
    cell_timeout: float,
    deadline: float,
) -> JudgeReport:
    """Each graded cell in its own namespace (support cells, then the cell's parts), so that
    every visible part runs before any hidden one and keeps its whole message (messages.py):
    first the cells without hidden tests, then each other cell up to its first hidden part,
    then the rest of those cells, in the notebook's order each time."""
    cells = _Cells(support, remote, trusted, sp, clock, cell_timeout, deadline)
    rest: dict[int, tuple[dict, list]] = {}  # cell -> its namespace and the parts still to run
    order = sorted(range(len(grade_cells)), key=lambda i: holds_hidden_tests(grade_cells[i].source))
    for i in order:
        md = grade_cells[i].metadata["nbgrader"]
        cut = parts(grade_cells[i].source, f"<test {md['grade_id']}>")
        first = next((k for k, (_, hidden) in enumerate(cut) if hidden), len(cut))
        namespace = cells.run(i, md, {}, cut[:first], after_hidden=False)
        if namespace is not None and first < len(cut):
            rest[i] = (namespace, cut[first:])
    for i, (namespace, later) in rest.items():
        cells.run(i, grade_cells[i].metadata["nbgrader"], namespace, later, after_hidden=True)
    verdicts = [cells.verdicts[i] for i in range(len(grade_cells))]
    return JudgeReport(verdicts, sp.cell_errors)
