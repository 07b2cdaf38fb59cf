"""Similarity's cost: a class of 200, and a class of 22 with and without one pathological case.

    python benchmarks/similarity.py [--class-size 200]

Submissions are built from the module's reference solution, its catalogue of known mistakes
(one mistake each, cycled) and the catalogue's correct alternatives, with local names renamed
at random (seed fixed), so that every pair is compared on code of ordinary size. Timed: reading
the submissions and comparing every pair (`similarity`), and writing the page (`to_html`). The
class of 22 is timed as it is, with one submission that carries 186,000 characters of `<&`
comment lines, and with one that carries them in a string (which is code, so it is compared);
the ratios to the plain class are printed.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.grading.catalogue_runs import ALTERNATIVES, alternative_submission  # noqa: E402
from tito.course import notebooks as sub  # noqa: E402
from tito.course.grading.similarity import similarity, to_html  # noqa: E402
from tito.course.settings import Course  # noqa: E402

NAMES = ["d_p", "buf", "exp_avg", "exp_avg_sq", "denom", "total", "clip_coef", "progress"]
FLOOD = "\n".join("# " + "<&" * 45 for _ in range(2000))


def renamed(nb, rng: random.Random):
    """Every solution region with some of NAMES renamed (a fresh choice per submission)."""
    for c in nb.cells:
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"):
            for name in rng.sample(NAMES, 4):
                c.source = re.sub(rf"\b{name}\b", f"{name}_{rng.randrange(1000)}", c.source)
    return nb


def class_of(n: int, seed: int = 0) -> list:
    course = Course()
    m = course.module("06")
    release = nbformat.read(course.release_notebook(m), as_version=4)
    complete = sub.filled(release, nbformat.read(course.source_notebook(m), as_version=4))
    mistakes = yaml.safe_load(m.mistakes.read_text(encoding="utf-8"))["mistakes"]
    rng = random.Random(seed)
    pool = [complete]
    pool += [alternative_submission(complete, a) for a in ALTERNATIVES]
    pool += [
        sub.replace_region(complete, b["region"], b["code"], b.get("index", 0)) for b in mistakes
    ]
    return [renamed(nbformat.from_dict(pool[i % len(pool)]), rng) for i in range(n)]


def timed(notebooks: list, repeats: int = 1) -> tuple[float, float, int]:
    """(seconds to compare, seconds to write the page, listed pairs) for one class, the median of
    `repeats` runs."""
    course = Course()
    m = course.module("06")
    with tempfile.TemporaryDirectory() as tmp:
        for i, nb in enumerate(notebooks):
            path = course.submission_notebook(m, f"s{i:03d}", Path(tmp))
            path.parent.mkdir(parents=True)
            nbformat.write(nb, path)
        compared, page = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            report = similarity(course, m, course_root=Path(tmp))
            compared.append(time.perf_counter() - start)
            start = time.perf_counter()
            to_html(report)
            page.append(time.perf_counter() - start)
        return statistics.median(compared), statistics.median(page), len(report.flagged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--class-size", type=int, default=200)
    args = parser.parse_args()
    compare, page, listed = timed(class_of(args.class_size))
    pairs = args.class_size * (args.class_size - 1) // 2
    print(f"class of {args.class_size} ({pairs:,} pairs): compared in {compare:.1f} s, page in")
    print(f"  {page:.1f} s, {listed} pairs listed ({compare / pairs * 1e3:.2f} ms per pair)")
    small = class_of(22, seed=1)
    comment = [nbformat.from_dict(nb) for nb in small]
    comment[0] = sub.replace_region(
        comment[0], "adam_step_impl", FLOOD + "\n" + sub.region(comment[0], "adam_step_impl")
    )
    string = [nbformat.from_dict(nb) for nb in small]
    string[0] = sub.replace_region(
        string[0],
        "adam_step_impl",
        f"flood = {FLOOD!r}\n" + sub.region(string[0], "adam_step_impl"),
    )
    base = timed(small, repeats=7)
    print(f"class of 22 (median of 7): compared in {base[0]:.2f} s, page in {base[1]:.2f} s")
    for name, nbs in [("a <&-comment flood", comment), ("a <&-string flood", string)]:
        t = timed(nbs, repeats=7)
        total = (t[0] + t[1]) / (base[0] + base[1])
        print(f"  with {name}: {t[0]:.2f} s + {t[1]:.2f} s, {total:.2f}x the plain class")


if __name__ == "__main__":
    main()
