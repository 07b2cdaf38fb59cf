"""The student's check on a full solution: `tito module complete 06` against its peers, in one run.

    python benchmarks/student_check.py [--runs 7]

In a student edition built in a temporary folder (`tito release student`), a working copy of
06 holds the reference solution. Each command runs it from a terminal process of its own, as
a student would, `--runs` times in turn:
- the edition's `tito module complete 06` (`python -m tito.main` in the edition, which puts its
  own tito and package first): restores the locked cells, exports with nbdev, runs the notebook
  in a kernel (cells tagged skip-execution left out), reports every graded cell;
- `nbgrader validate` on the same notebook, skipping the same cells (the peer: it runs the
  notebook and says whether any test failed; no export, no per-cell report);
- `jupyter nbconvert --execute` skipping the same cells: the kernel run alone.
It prints the median and the fastest run of each and their ratios, and fails if a command did
not succeed. The repository is not touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from tito.course import notebooks as sub
from tito.course.settings import Course

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SKIP = "skip-execution"


def edition_with_a_full_solution(dest: Path) -> Path:
    """A student edition whose working copy of 06 is the reference solution; its notebook's path."""
    subprocess.run(
        [str(BIN / "tito"), "release", "student", str(dest)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "-m", "tito.main", "module", "start", "06"],
        cwd=dest,
        check=True,
        capture_output=True,
    )
    m = Course(REPO).module("06")
    work = Course(dest).workspace_notebook(m)
    solution = nbformat.read(Course(REPO).source_notebook(m), as_version=4)
    nbformat.write(sub.filled(nbformat.read(work, as_version=4), solution), work)
    return work


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(cwd)},
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(
            f"{' '.join(command)} failed ({result.returncode}):\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        edition = Path(tmp) / "edition"
        work = edition_with_a_full_solution(edition)
        executed = Path(tmp) / "executed.ipynb"
        commands = {
            "tito module complete 06": [
                sys.executable,
                "-m",
                "tito.main",
                "module",
                "complete",
                "06",
            ],
            "nbgrader validate (peer)": [
                str(BIN / "nbgrader"),
                "validate",
                str(work),
                f"--Execute.skip_cells_with_tag={SKIP}",
            ],
            "jupyter nbconvert --execute": [
                str(BIN / "jupyter"),
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                str(work),
                "--output",
                str(executed),
                f"--ExecutePreprocessor.skip_cells_with_tag={SKIP}",
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(
            args.runs
        ):  # in turn, so that a slow moment of the machine touches every command
            for name, command in commands.items():
                times[name].append(timed(command, edition))
        skipped = [
            c
            for c in nbformat.read(executed, as_version=4).cells
            if SKIP in c.metadata.get("tags", [])
        ]
        assert skipped and all(not c.outputs for c in skipped), (
            "nbconvert ran the cells it was told to skip"
        )
    ours = statistics.median(times["tito module complete 06"])
    print(f"{args.runs} runs each, a full solution of 06_optimizers ({os.cpu_count()} CPUs)")
    print(f"{'command':32} {'median s':>9} {'fastest s':>10} {'ratio to tito':>14}")
    for name, ts in times.items():
        print(
            f"{name:32} {statistics.median(ts):9.2f} {min(ts):10.2f} "
            f"{statistics.median(ts) / ours:14.2f}"
        )


if __name__ == "__main__":
    main()
