"""Autograde 20 submissions with --workers 1 and --workers 2; check identical scores, report speedup.

    python benchmarks/autograde.py [--submissions 20]

Runs in a temporary course copy (real nbgrader gradebook, real kernels); the repository
is not touched. The submissions cycle through the four bundled examples.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from tito.course.generate import generate
from tito.course.grading.host import autograde
from tito.course.settings import Course

REPO = Path(__file__).resolve().parents[1]


def course_copy(dest: Path) -> Course:
    for name in ["modules", "tinytorch"]:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["pyproject.toml", "settings.ini"]:
        shutil.copy(REPO / name, dest / name)
    course = Course(dest)
    generate(course, course.module("06"))
    return course


def run(n: int, workers: int) -> tuple[float, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        course = course_copy(Path(tmp))
        m = course.module("06")
        examples = sorted((REPO / "examples" / "submissions").glob("*.ipynb"))
        students = []
        for i in range(n):
            sid = f"s{i:02d}-{examples[i % len(examples)].stem}"
            dest = course.root / "submitted" / sid / m.name / f"{m.notebook}.ipynb"
            dest.parent.mkdir(parents=True)
            shutil.copy(examples[i % len(examples)], dest)
            students.append(sid)
        start = time.perf_counter()
        outcomes = autograde(course, m, students, workers=workers)
        elapsed = time.perf_counter() - start
        return elapsed, {o.student: [c.score for c in o.cells] for o in outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=20)
    args = parser.parse_args()
    t1, s1 = run(args.submissions, 1)
    t2, s2 = run(args.submissions, 2)
    same = s1 == s2
    print(f"cores: {os.cpu_count()}, submissions: {args.submissions}")
    print(f"--workers 1: {t1:7.1f} s  ({t1 / args.submissions:.1f} s per submission)")
    print(f"--workers 2: {t2:7.1f} s  ({t2 / args.submissions:.1f} s per submission)")
    print(f"speedup: {t1 / t2:.2f}x; identical per-cell scores: {same}")
    totals = sorted({sum(v) for v in s1.values()})
    print(f"distinct totals: {totals}")
    if not same:
        raise SystemExit("scores differ between --workers 1 and --workers 2")


if __name__ == "__main__":
    main()
