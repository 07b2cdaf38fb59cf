"""Run a module's graded test cells in this (trusted) process against the student's code.

The trusted namespace is built from the instructor notebook's exported cells; every
function that holds a solution region is then replaced by a proxy that calls the
student's version in a sandbox process (see sandbox.py) and mirrors the results back.
The test cells come from the instructor notebook too, hidden tests included, so nothing
the student wrote or edited decides how their code is judged.
"""
from __future__ import annotations

import ast
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..notebooks import is_export_cell, is_grade_cell
from . import isolation
from .mirror import Mirror
from .wire import WireError, receive, send

SOLUTION_MARK = "### BEGIN SOLUTION"
SANDBOX_START_SECONDS = 60  # Python, numpy and matplotlib start, before any student code


def student_functions(cells) -> list[str]:
    """Names of the top-level functions whose bodies hold a solution region."""
    names = []
    for cell in cells:
        if SOLUTION_MARK not in cell.source:
            continue
        lines = cell.source.splitlines()
        marks = [i + 1 for i, line in enumerate(lines) if line.strip() == SOLUTION_MARK]
        tree = ast.parse(cell.source)
        covered = set()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                inside = [m for m in marks if node.lineno < m <= node.end_lineno]
                if inside:
                    names.append(node.name)
                    covered.update(inside)
        if set(marks) - covered:
            raise ValueError("a solution region must sit inside a top-level function so that it can be "
                             f"judged in isolation; found one outside in cell {cell.get('id')!r}")
    return names


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
    isolated: bool = False  # whether the student's process ran with the course files hidden


class StudentProcess:
    """The sandbox: started lazily, restarted after a crash or a timeout."""

    def __init__(self, cells: list[str], timeout: float, memory_mb: int, hide: list[Path]):
        self.cells, self.timeout, self.memory_mb, self.hide = cells, timeout, memory_mb, hide
        self.proc = None
        self.broken = ""  # why the student's cells could not be run; later calls fail at once
        self.cell_errors: list[str] = []
        self._stage = Path(tempfile.mkdtemp(prefix="grading-sandbox-"))
        self._run = isolation.stage(self._stage)
        self._code_path = self._stage / "student-code.json"
        self._code_path.write_text(json.dumps(cells), encoding="utf-8")
        self.isolated = isolation.available()

    def _limits(self):
        limit = self.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def start(self) -> None:
        req_r, self.req_w = os.pipe()
        self.resp_r, resp_w = os.pipe()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
        argv = [sys.executable, "-I", str(self._run), str(self._code_path), str(req_r), str(resp_w), str(self.timeout)]
        if self.isolated:
            argv = isolation.command(argv, self.hide, self._stage)
        try:
            self.proc = subprocess.Popen(
                argv,
                pass_fds=(req_r, resp_w), env=env, cwd=tempfile.gettempdir(), start_new_session=True,
                preexec_fn=self._limits, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as e:
            for fd in (req_r, resp_w, self.req_w, self.resp_r):
                os.close(fd)
            raise SandboxSetupError(f"the grading sandbox could not start: {e}") from None
        finally:
            if self.proc is not None:
                os.close(req_r)
                os.close(resp_w)
        self.mirror = Mirror(parity=0)
        try:
            hello, _ = receive(self.resp_r, time.monotonic() + SANDBOX_START_SECONDS)
            if hello != {"hello": True}:
                raise WireError("unexpected first message")
        except Exception as e:
            self.stop()
            if not self.isolated:
                raise SandboxSetupError(f"the grading sandbox could not start: {e}") from None
            # The namespace set-up failed on this machine: grade unisolated, and say so.
            self.isolated = False
            return self.start()
        deadline = time.monotonic() + self.timeout * max(1, len(self.cells))
        try:
            header, _ = receive(self.resp_r, deadline)
        except Exception as e:  # unreadable, too slow, or gone: nothing of the student's can be judged
            self.stop()
            self.broken = f"your exported cells did not finish running: {e}"
            raise StudentError(self.broken) from None
        self.cell_errors = [str(x) for x in header.get("cell_errors", [])][:20]

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
        shutil.rmtree(self._stage, ignore_errors=True)

    def call(self, name: str, args, kwargs, deadline: float):
        if self.broken:
            raise StudentError(self.broken)
        if self.proc is None:
            self.start()
        arrays: list = []
        header = {"fn": name, "args": [self.mirror.encode(a, arrays) for a in args],
                  "kwargs": {k: self.mirror.encode(v, arrays) for k, v in kwargs.items()}}
        try:
            send(self.req_w, header, arrays)
            reply, out = receive(self.resp_r, min(deadline, time.monotonic() + self.timeout))
        except TimeoutError:
            self.stop()
            raise StudentError(f"{name}() did not return within the time limit") from None
        except Exception as e:  # the stream is out of step or the process is gone: start afresh
            self.stop()
            raise StudentError(f"the process running {name}() stopped ({type(e).__name__}: {e})") from None
        if not reply.get("ok"):
            # Common built-in errors keep their type, so tests of error behaviour work across
            # the boundary; anything else (custom classes, SystemExit, ...) is a StudentError.
            etype = _REBUILT_ERRORS.get(str(reply.get("type")))
            if etype is not None:
                raise etype(str(reply.get("message", "")))
            raise StudentError(f"{name}() raised {reply.get('error', 'an error')}")
        try:
            for e in reply.get("sync", []):
                self.mirror.decode(e, out)
            return self.mirror.decode(reply.get("ret"), out)
        except Exception as e:
            raise StudentError(f"{name}() left its arguments in an unusable state: {e}") from None


class SandboxSetupError(Exception):
    """The sandbox failed before any student code ran: a problem of the grading machine."""


class StudentError(Exception):
    """The student's code raised, returned something unusable, or could not be run.

    Not a built-in type, so a test that expects e.g. a RuntimeError is not satisfied by it.
    """


_REBUILT_ERRORS = {e.__name__: e for e in [
    ValueError, TypeError, RuntimeError, NotImplementedError, ArithmeticError, ZeroDivisionError,
    FloatingPointError, OverflowError, IndexError, KeyError, AttributeError, NameError, AssertionError,
]}


def _proxy(sp: StudentProcess, name: str, clock: dict):
    def call(*args, **kwargs):
        return sp.call(name, args, kwargs, clock["deadline"])

    call.__name__ = call.__qualname__ = name
    return call


def judge(reference: nbformat.NotebookNode, submission: nbformat.NotebookNode,
          cell_timeout: float, memory_mb: int, hide: list[Path] = ()) -> JudgeReport:
    """Score every graded test cell of `reference` against the student code in `submission`."""
    ref_exports = [c for c in reference.cells if is_export_cell(c)]
    names = student_functions(ref_exports)
    grade_cells = [c for c in reference.cells if is_grade_cell(c) and c.cell_type == "code"]
    student_cells = [c.source for c in submission.cells if is_export_cell(c) and not is_grade_cell(c)]

    trusted: dict = {"__name__": "__reference__"}
    for c in ref_exports:
        exec(compile(c.source, f"<reference cell {c.get('id')}>", "exec"), trusted)

    sp = StudentProcess(student_cells, cell_timeout, memory_mb, list(hide))
    clock = {"deadline": 0.0}
    for name in names:
        trusted[name] = _proxy(sp, name, clock)
    verdicts = []
    try:
        for c in grade_cells:
            md = c.metadata["nbgrader"]
            clock["deadline"] = time.monotonic() + cell_timeout
            try:
                exec(compile(c.source, f"<test {md['grade_id']}>", "exec"), dict(trusted))
                verdicts.append(CellVerdict(md["grade_id"], float(md.get("points", 0)), True))
            except SandboxSetupError:
                raise  # not the student's doing: the submission is recorded as failed, with why
            except Exception as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                verdicts.append(CellVerdict(md["grade_id"], float(md.get("points", 0)), False,
                                            f"{type(e).__name__}: {msg}"[:500]))
        return JudgeReport(verdicts, sp.cell_errors, sp.isolated)
    finally:
        sp.close()
