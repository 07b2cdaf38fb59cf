"""Autograding throughput: plain nbgrader against tito locally and on a Dask cluster, in one run.

    python benchmarks/autograde.py [--submissions 40]

Each configuration grades the same submissions (the four bundled examples and the bug
catalogue's submissions, cycled) in a fresh temporary course copy:
- `nbgrader autograde` alone, one submission after another (the peer: no judge, no jail);
- tito with --workers 1 and --workers 2 (jailed kernel run + judge, local processes), and
  with --workers 1 --unsafe-no-jail (the same processes unconfined: what the jail costs);
- tito with --workers 1 and the jail as it was before its syscall filter and per-jail
  memory and CPU bounds (benchmarks/unbounded_job.py): what those cost;
- tito on a Dask cluster started here on loopback (a scheduler and two one-thread workers).
It prints seconds per submission per worker, the CPU seconds the whole machine spent per
submission (/proc/stat: what a submission costs, however its processes share the cores) and
the scaling efficiency, and fails if any tito configuration's per-cell scores differ from
another's. The repository is not touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml
from nbconvert.exporters import NotebookExporter

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.grading.dask_cluster import local_cluster  # noqa: E402
from tito.course import notebooks as sub  # noqa: E402
from tito.course.generate import generate  # noqa: E402
from tito.course.grading.host import autograde  # noqa: E402
from tito.course.grading.job import run_in_process  # noqa: E402
from tito.course.nbgrader_setup import api, nbgrader_config, quiet  # noqa: E402
from tito.course.settings import Course  # noqa: E402

UNBOUNDED_JOB = Path(__file__).resolve().parent / "unbounded_job.py"


def course_copy(dest: Path) -> Course:
    for name in ["modules", "tinytorch"]:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["pyproject.toml", "settings.ini"]:
        shutil.copy(REPO / name, dest / name)
    course = Course(dest)
    generate(course, course.module("06"))
    return course


def submissions(course: Course, n: int) -> dict[str, nbformat.NotebookNode]:
    m = course.module("06")
    release = nbformat.read(course.release_notebook(m), as_version=4)
    complete = sub.filled(release, nbformat.read(course.source_notebook(m), as_version=4))
    pool = [
        nbformat.read(p, as_version=4)
        for p in sorted((REPO / "examples" / "submissions").glob("*.ipynb"))
    ]
    for bug in yaml.safe_load(m.mistakes.read_text(encoding="utf-8"))["mistakes"]:
        pool.append(sub.replace_region(complete, bug["region"], bug["code"], bug.get("index", 0)))
    return {f"s{i:02d}": pool[i % len(pool)] for i in range(n)}


def machine_cpu() -> float:
    """CPU seconds the machine has spent busy so far, all cores together (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # idle, iowait


def grade(n: int, how: str, workers: int = 1, scheduler: str = "") -> tuple[float, float, dict]:
    """(wall seconds, machine CPU seconds, per-cell scores) of grading n submissions."""
    with tempfile.TemporaryDirectory() as tmp:
        course = course_copy(Path(tmp))
        m = course.module("06")
        subs = submissions(course, n)
        for student, nb in subs.items():
            dest = course.root / "submitted" / student / m.name / f"{m.notebook}.ipynb"
            dest.parent.mkdir(parents=True)
            nbformat.write(nb, dest)
        start, cpu = time.perf_counter(), machine_cpu()
        if how == "nbgrader":
            config = nbgrader_config(course)
            config.Autograde.exporter_class = (
                NotebookExporter  # the course refuses this path by default
            )
            with quiet():
                for (
                    student
                ) in subs:  # nbgrader's own autograde, executing the notebook in its kernel
                    api(course, config=config).autograde(m.name, student, force=True, create=True)
            return time.perf_counter() - start, machine_cpu() - cpu, {}
        run_job = (
            (lambda job: run_in_process(job, (str(UNBOUNDED_JOB),))) if how == "unbounded" else None
        )
        outcomes = autograde(
            course,
            m,
            list(subs),
            workers=workers,
            scheduler=scheduler,
            jail=how != "unjailed",
            run_job=run_job,
        )
        elapsed, spent = time.perf_counter() - start, machine_cpu() - cpu
        return elapsed, spent, {o.student: [c.score for c in o.cells] for o in outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=40)
    args = parser.parse_args()
    n = args.submissions
    rows = [
        ("plain nbgrader autograde", 1, *grade(n, "nbgrader")),
        ("tito, --workers 1", 1, *grade(n, "tito", 1)),
        ("tito, 1, --unsafe-no-jail", 1, *grade(n, "unjailed", 1)),
        ("tito, 1, no filter/bounds", 1, *grade(n, "unbounded", 1)),
        ("tito, --workers 2", 2, *grade(n, "tito", 2)),
    ]
    with (
        tempfile.TemporaryDirectory(prefix="tito-dask-") as folder,
        local_cluster(Path(folder), workers=2) as (address, _),
    ):
        rows.append(("tito on Dask, 2 workers", 2, *grade(n, "tito", 2, address)))
    print(f"cores: {os.cpu_count()}, submissions: {n}")
    peer, peer_cpu = rows[0][2] / n, rows[0][3] / n
    for name, workers, seconds, spent, _ in rows:
        per = seconds * workers / n
        print(
            f"{name:26s} {seconds:7.1f} s  {per:5.2f} s per submission per worker  "
            f"({per / peer:.2f}x plain nbgrader), machine CPU {spent / n:5.2f} s per submission "
            f"({spent / n / peer_cpu:.2f}x)"
        )
    one, unjailed, unbounded = rows[1][2], rows[2][2], rows[3][2]
    print(
        f"the jail costs {(one - unjailed) / n:.2f} s per submission "
        f"({one / unjailed:.2f}x unconfined)"
    )
    print(
        f"the syscall filter and per-jail bounds cost {(one - unbounded) / n:.2f} s per submission "
        f"({one / unbounded:.2f}x without them)"
    )
    for name, workers, seconds, _, _ in rows[4:]:
        print(
            f"{name}: speedup {one / seconds:.2f}x over --workers 1, scaling efficiency "
            f"{one / seconds / workers:.0%}"
        )
    scores = [r[4] for r in rows[1:]]
    if any(s != scores[0] for s in scores):
        raise SystemExit("per-cell scores differ between configurations")
    print("identical per-cell scores in every tito configuration")


if __name__ == "__main__":
    main()
