"""What the diagnosis costs a submission: the judge on one failing submission, with and without it.

    python benchmarks/diagnosis.py [--runs 5]

The submission is the reference solution with one catalogued mistake (eps inside Adam's square
root), so some cells fail and the judge probes every solution region through the jail, then the
catalogued wrong versions of the one region that differs. Each run is a fresh jail; the two
variants alternate. A submission that passes every cell is not probed and pays nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
import yaml

from tito.course import notebooks as sub
from tito.course.grading.host import student_package
from tito.course.grading.jail import Jail
from tito.course.grading.judge import judge
from tito.course.settings import Course

MISTAKE = "adam-eps-inside-sqrt"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    course = Course()
    m = course.module("06")
    reference = nbformat.read(course.source_notebook(m), as_version=4)
    mistakes = m.mistakes.read_text(encoding="utf-8")
    bug = next(b for b in yaml.safe_load(mistakes)["mistakes"] if b["id"] == MISTAKE)
    submission = sub.replace_region(
        sub.filled(nbformat.read(course.release_notebook(m), as_version=4), reference),
        bug["region"],
        bug["code"],
    )
    seconds: dict[str, list[float]] = {"judge": [], "judge + diagnosis": []}
    for _ in range(args.runs):
        for name, catalogue in (("judge", ""), ("judge + diagnosis", mistakes)):
            with tempfile.TemporaryDirectory() as d:
                jail = Jail(course.grading, Path(d))
                jail.add_package(student_package(course))
                start = time.perf_counter()
                report = judge(
                    reference,
                    submission,
                    jail,
                    tensor_class=course.package.tensor_class,
                    mistakes=catalogue,
                )
                seconds[name].append(time.perf_counter() - start)
                jail.close()
            if catalogue and report.diagnosis != {bug["region"]: [MISTAKE]}:
                raise SystemExit(f"the diagnosis named {report.diagnosis}, not {MISTAKE}")
    base = statistics.median(seconds["judge"])
    print(f"{args.runs} runs each, one failing submission of {m.name} ({MISTAKE})")
    print(f"{'variant':20s} {'median s':>9s} {'fastest s':>10s} {'ratio':>6s}")
    for name, values in seconds.items():
        print(
            f"{name:20s} {statistics.median(values):9.2f} {min(values):10.2f} "
            f"{statistics.median(values) / base:6.2f}"
        )


if __name__ == "__main__":
    main()
