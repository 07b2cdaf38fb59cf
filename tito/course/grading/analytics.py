"""What the class got wrong: statistics per graded cell, from the gradebook (scores.py).

Only submissions whose outcome is `graded` count: an invalid one says nothing about a cell, and a
failed one was never scored. Per graded cell:
- graded: the submissions that have a score for it (a written answer waiting for a person has none);
- pass rate: the share with the cell's full points; mean: its mean points;
- discrimination: the point-biserial correlation between passing the cell (1 or 0) and the rest
  of the total (the student's total without this cell). It uses every student, where the
  upper-lower 27% index leaves out the middle 46% of the class and, in a class of thirty, moves
  with one student; the rest of the total keeps a cell from correlating with itself. None when
  everyone or no one passes, or every other total is the same.
Flags: `easy` when at least 95% pass, `hard` when at most 5% pass, and `suspect` when the
strongest students fail the cell more often than the weakest, which is what a broken test looks
like, and more clearly than chance explains: a discrimination of -0.2 or less, and a `chance` of
at most 0.05 / (the number of cells with a discrimination). The chance is a permutation test:
the share of the ways to pick as many passing students from the class whose rest of the total
sums to no more than the students who did pass (exact while there are at most EXACT_UP_TO ways,
else DRAWS random ones from a fixed seed). Dividing 0.05 among the cells keeps a page of some
fifty cells from flagging one by chance: on this module's page (41 cells with a
discrimination), two strong students of sixteen who slip on the same cell (a chance of 1 in 12)
are not flagged, a test that fails the strongest third of a class of thirty is. A class of about
twelve or fewer cannot reach the threshold at all: so few students cannot show more than
chance. Written answers still waiting for a person count 0 in the rest of the total.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np

from ..notebooks import part_heading
from ..settings import Course, Module
from . import diagnosis
from .lms import spreadsheet_text, spreadsheet_writer
from .outcome import load_outcome
from .report import score_rows

EASY, HARD, SUSPECT = 0.95, 0.05, -0.2
FALSE_ALARMS = 0.05  # the chance of any `suspect` flag on a page where no test is broken
EXACT_UP_TO = 50_000  # ways to choose the passing students enumerated; beyond, random draws
DRAWS = 20_000


@dataclass
class CellStats:
    grade_id: str
    part: str
    points: float
    graded: int
    pass_rate: float | None
    mean: float | None
    discrimination: float | None
    chance: float | None = None  # of so negative a discrimination by chance (permutation test)
    flags: list[str] = field(default_factory=list)


@dataclass
class ClassStats:
    module: str
    cells: list[CellStats]
    totals: list[float]  # one per graded submission
    max_total: float
    left_out: dict[str, int]  # status -> submissions not counted
    # (function, what it behaves like, students), most common first: the diagnosis of graded
    # outcomes
    mistakes: list[tuple[str, str, int]] = field(default_factory=list)


def point_biserial(passed: list[int], rest: list[float]) -> float | None:
    """Pearson's correlation of a 0/1 variable with a number; None when either does not vary."""
    n = len(passed)
    if n < 2:
        return None
    mp, mr = sum(passed) / n, sum(rest) / n
    sp = sum((p - mp) ** 2 for p in passed)
    sr = sum((r - mr) ** 2 for r in rest)
    if sp == 0 or sr == 0:
        return None
    return sum((p - mp) * (r - mr) for p, r in zip(passed, rest)) / math.sqrt(sp * sr)


def chance_of_lower(passed: list[int], rest: list[float]) -> float | None:
    """The share of the ways to choose sum(passed) students of the class whose `rest` sums to at
    most that of the students who passed: how often a discrimination this negative comes from
    passing unrelated to the rest. Exact up to EXACT_UP_TO ways, else from DRAWS random choices
    (seed 0, so the same class gives the same figure); None when the discrimination is None."""
    n, k = len(passed), sum(passed)
    if point_biserial(passed, rest) is None:
        return None
    values = np.asarray(rest, dtype=float)
    observed = float(values[np.asarray(passed, dtype=bool)].sum())
    tie = 1e-9 * max(1.0, float(np.abs(values).sum()))  # sums equal but for rounding count as equal
    if math.comb(n, k) <= EXACT_UP_TO:
        sums = [sum(c) for c in itertools.combinations(values.tolist(), k)]
        return sum(t <= observed + tie for t in sums) / len(sums)
    rng, lower = np.random.default_rng(0), 0
    for start in range(0, DRAWS, 1000):  # a thousand choices at a time: memory stays small
        draws = min(1000, DRAWS - start)
        picks = np.argpartition(rng.random((draws, n)), k - 1, axis=1)[:, :k]
        lower += int((values[picks].sum(axis=1) <= observed + tie).sum())
    return (1 + lower) / (1 + DRAWS)  # the observed choice counts as one of the draws


def cell_stats(
    points: dict[str, float], parts: dict[str, str], rows: list[dict]
) -> list[CellStats]:
    """Statistics and flags of each cell in `points` over `rows` (one per graded submission: the
    points of each cell, or "pending" for a written answer waiting for a person, and "total")."""
    stats = []
    for c in points:
        scored = [r for r in rows if r[c] != "pending"]
        passed = [int(r[c] >= points[c]) for r in scored]
        rest = [r["total"] - r[c] for r in scored]
        stats.append(
            CellStats(
                c,
                parts.get(c, ""),
                points[c],
                len(scored),
                sum(passed) / len(scored) if scored else None,
                sum(r[c] for r in scored) / len(scored) if scored else None,
                point_biserial(passed, rest),
                chance_of_lower(passed, rest),
            )
        )
    tested = sum(s.discrimination is not None for s in stats)
    for s in stats:
        if s.pass_rate is not None and s.pass_rate >= EASY:
            s.flags.append("easy")
        if s.pass_rate is not None and s.pass_rate <= HARD:
            s.flags.append("hard")
        if (
            s.discrimination is not None
            and s.discrimination <= SUSPECT
            and s.chance <= FALSE_ALARMS / tested
        ):
            s.flags.append("suspect")
    return stats


def _parts_and_points(reference: Path) -> tuple[dict[str, str], dict[str, float]]:
    """Grade id -> the "Part N: ..." heading it sits under, and -> its points (instructor
    notebook)."""
    nb = nbformat.read(reference, as_version=4)
    parts, points, part = {}, {}, ""
    for cell in nb.cells:
        part = part_heading(cell) or part
        md = cell.metadata.get("nbgrader", {})
        if md.get("grade"):
            parts[md["grade_id"]], points[md["grade_id"]] = part, float(md.get("points", 0))
    return parts, points


def class_stats(course: Course, m: Module, course_root: Path | None = None) -> ClassStats:
    cells, rows = score_rows(course, m, course_root)
    parts, points = _parts_and_points(course.source_notebook(m, course_root))
    graded = [r for r in rows if r["status"] == "graded"]
    left_out: dict[str, int] = {}
    for r in rows:
        if r["status"] != "graded":
            left_out[r["status"]] = left_out.get(r["status"], 0) + 1
    stats = cell_stats({c: points[c] for c in cells}, parts, graded)
    return ClassStats(
        m.name,
        stats,
        [r["total"] for r in graded],
        sum(points.values()),
        left_out,
        _mistakes(course, m, [r["student"] for r in graded], course_root),
    )


def _mistakes(
    course: Course, m: Module, students: list[str], course_root: Path | None
) -> list[tuple[str, str, int]]:
    """How many graded students' functions behave like each known mistake (or like none)."""
    if m.mistakes is None:
        return []
    catalogue = diagnosis.load(m.mistakes.read_text(encoding="utf-8"))
    names = diagnosis.region_functions(
        nbformat.read(course.source_notebook(m, course_root), as_version=4)
    )
    counts: Counter = Counter()
    for student in students:
        outcome = load_outcome(course, course.state_root(course_root), m, student)
        if outcome is not None:
            counts.update(
                (names[r], what)
                for r, what in diagnosis.described(outcome.diagnosis, catalogue, names).items()
            )
    return [
        (fn, what, n) for (fn, what), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def number(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def chance_text(x: float | None) -> str:
    """A chance with two significant digits (0.083, 5e-05): small ones stay readable."""
    return "" if x is None else f"{x:.2g}"


def to_csv(stats: ClassStats) -> str:
    out = io.StringIO()
    w = spreadsheet_writer(out)
    w.writerow(
        [
            "grade_id",
            "part",
            "points",
            "graded",
            "pass_rate",
            "mean",
            "discrimination",
            "chance",
            "flags",
        ]
    )
    for s in stats.cells:  # numbers as numbers (a blank where there is none), text quoted
        w.writerow(
            [
                spreadsheet_text(s.grade_id),
                spreadsheet_text(s.part),
                s.points,
                s.graded,
                *(
                    "" if x is None else round(x, 4)
                    for x in (s.pass_rate, s.mean, s.discrimination)
                ),
                "" if s.chance is None else float(f"{s.chance:.4g}"),
                " ".join(s.flags),
            ]
        )
    return out.getvalue()


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plots(stats: ClassStats) -> dict[str, str]:
    """The score histogram and the pass rate per cell (grouped by part), as PNG data URLs."""
    # matplotlib: half a second to import, paid only for the charts (Agg before pyplot)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the backend

    out = {}
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(
        stats.totals,
        bins=min(20, max(1, len(set(stats.totals)))),
        range=(0, stats.max_total),
        color="#4a72b0",
    )
    ax.set_xlabel(f"total points (of {stats.max_total:g})")
    ax.set_ylabel("submissions")
    out["scores"] = _png(fig)
    plt.close(fig)
    cells = [s for s in stats.cells if s.pass_rate is not None]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.22 * len(cells))))
    colours = {p: f"C{i % 10}" for i, p in enumerate(dict.fromkeys(s.part for s in cells))}
    ax.barh(range(len(cells)), [s.pass_rate for s in cells], color=[colours[s.part] for s in cells])
    ax.set_yticks(range(len(cells)), [s.grade_id for s in cells], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("pass rate")
    for part, colour in colours.items():
        ax.bar(0, 0, color=colour, label=part or "(no part)")
    ax.legend(fontsize=7, loc="lower right")
    out["pass_rates"] = _png(fig)
    plt.close(fig)
    if stats.mistakes:
        fig, ax = plt.subplots(figsize=(7, max(2, 0.3 * len(stats.mistakes))))
        ax.barh(range(len(stats.mistakes)), [n for _, _, n in stats.mistakes], color="#b05a4a")
        ax.set_yticks(
            range(len(stats.mistakes)),
            [f"{fn}: {what}"[:70] for fn, what, _ in stats.mistakes],
            fontsize=7,
        )
        ax.invert_yaxis()
        ax.set_xlabel("students")
        out["mistakes"] = _png(fig)
        plt.close(fig)
    return out


def to_html(stats: ClassStats) -> str:
    """A page of its own: no script, no request (the plots are inline PNG), every text escaped."""
    e = html.escape
    images = plots(stats)
    tested = sum(s.discrimination is not None for s in stats.cells)
    totals_said = (
        f"histogram of the total scores of {len(stats.totals)} graded submissions, out of "
        f"{stats.max_total:g}: lowest {min(stats.totals):g}, median "
        f"{sorted(stats.totals)[len(stats.totals) // 2]:g}, highest {max(stats.totals):g}"
    )
    left = ", ".join(f"{n} {status}" for status, n in sorted(stats.left_out.items())) or "none"
    mistakes = (
        (
            "<h2>The most common mistakes</h2>"
            "<p>The known mistake each graded submission's functions "
            "behave like (the grader's diagnosis).</p>"
            '<img alt="the most common mistakes: the same counts as the list below" '
            f'src="{images["mistakes"]}"><ul>'
            + "".join(
                f"<li>{e(fn)}: {e(what)}: {n} student{'s' if n != 1 else ''}</li>"
                for fn, what, n in stats.mistakes
            )
            + "</ul>"
        )
        if stats.mistakes
        else ""
    )
    rows = "\n".join(
        f'<tr class="{" ".join(s.flags)}"><td>{e(s.grade_id)}</td>'
        f"<td>{e(s.part)}</td><td>{s.points:g}</td>"
        f"<td>{s.graded}</td><td>{number(s.pass_rate)}</td><td>{number(s.mean)}</td>"
        f"<td>{number(s.discrimination)}</td><td>{chance_text(s.chance)}</td>"
        f"<td>{e(' '.join(s.flags))}</td></tr>"
        for s in stats.cells
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(stats.module)}: class analytics</title>
<style>body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; }} \
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; }} tr.suspect {{ background: #fdd; }}
tr.hard {{ background: #ffe9c7; }} tr.easy {{ color: #666; }}</style></head>
<body><main><h1>{e(stats.module)}: what the class got wrong</h1>
<p>{len(stats.totals)} graded submissions (left out: {e(left)}). \
Pass rate: the share with a cell's full points.
Discrimination: the point-biserial correlation of passing the cell with the rest of the total.
Chance: how often passing that is unrelated to the rest of the total gives a discrimination this
low (a permutation test over the class).
Flags: <b>easy</b> (at least {EASY:.0%} pass), <b>hard</b> (at most {HARD:.0%} pass), <b>suspect</b>
(discrimination {SUSPECT} or less and a chance of at most {FALSE_ALARMS} divided among the
{tested} cells with a discrimination, {FALSE_ALARMS / max(tested, 1):.4f}: \
the strongest students fail it more often than chance explains, as with a broken test).</p>
<h2>Scores</h2><img alt="{e(totals_said)}" src="{images["scores"]}">
<h2>Pass rate per graded cell</h2><img alt="pass rate per graded cell, grouped by part: the \
same figures as the pass rate column of the table below" src="{images["pass_rates"]}">
{mistakes}<h2>Per graded cell</h2>
<table><tr><th>graded cell</th><th>part</th><th>points</th><th>graded</th>\
<th>pass rate</th><th>mean</th>
<th>discrimination</th><th>chance</th><th>flags</th></tr>
{rows}
</table></main></body></html>
"""
