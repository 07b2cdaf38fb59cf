"""Similar submissions: which students' code shares long fragments.

What a student wrote is every line of their notebook's code that the release notebook does not
hold: the release's code (signatures, docstrings, stubs, provided lines, examples) is boilerplate
and never counts, line by line and again as fingerprints. copydetect fingerprints each student's
code by
winnowing, as MOSS does: hashes of every K-character run of the code with names and strings
normalised by copydetect's tokenizer (renamed variables do not hide a copy; numbers stay as
written), a minimum kept in every window of W hashes, matched wherever they stand (reordered
statements do not hide one either). Every pair is compared; a pair is listed when either side
has at least `threshold` of its code in fragments the other also has, and they share at least
MIN_SHARED characters.

The submissions are data: read as regular files up to the size limit, parsed as notebooks, and
every byte of their code is escaped and then passed through display.sanitize before the page
shows it.
"""

from __future__ import annotations

import hashlib
import html
import io
import itertools
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np

from ..notebooks import SOLUTION_BEGIN, SOLUTION_END
from ..settings import Course, CourseError, Module
from .display import sanitize
from .files import read_regular

K = 25  # characters of the normalised code in a fingerprinted run (copydetect's noise threshold)
WINDOW = 6  # hashes per winnowing window: any shared run of K + WINDOW - 1 = 30 characters is found
THRESHOLD = 0.5  # the share of one side's code in shared fragments from which a pair is listed
MIN_SHARED = (
    200  # characters of shared fragments below which a pair is never listed (one common idiom)
)
# characters of a student's own code compared at most; a longer one is named, not compared
MAX_CODE = 200_000


@dataclass
class Pair:
    a: str
    b: str
    share_a: float  # of a's tokens, the share in fragments b also has
    share_b: float
    tokens: int  # characters of the normalised code in shared fragments (of a)
    code_a: str
    code_b: str
    copied_a: list[tuple[int, int]]  # character ranges of a's code in shared fragments
    copied_b: list[tuple[int, int]]

    @property
    def share(self) -> float:
        return max(self.share_a, self.share_b)


@dataclass
class Report:
    module: str
    compared: list[str]  # students whose code was compared
    skipped: dict[str, str]  # student -> why not
    pairs: list[Pair]  # every compared pair, most similar first
    threshold: float

    @property
    def flagged(self) -> list[Pair]:
        return [p for p in self.pairs if p.share >= self.threshold and p.tokens >= MIN_SHARED]


def written_code(submission, release) -> str:
    """The code a student wrote: the lines of their code cells that no code cell of the release
    holds (nor nbgrader's solution markers), in order, blank lines left out."""
    provided = {
        line.strip()
        for c in release.cells
        if c.cell_type == "code"
        for line in c.source.splitlines()
    }
    provided |= {SOLUTION_BEGIN, SOLUTION_END}
    return "\n".join(
        line
        for c in submission.cells
        if c.cell_type == "code"
        for line in c.source.splitlines()
        if line.strip() and line.strip() not in provided
    )


def _stable_kgram_hashes(string: str, k: int) -> np.ndarray:
    """The hash of every k-character run of `string`. copydetect's own uses Python's hash(), which
    changes from process to process (hash randomisation), and with it which runs winnowing keeps:
    the same submissions then give slightly different figures each run. This one does not."""
    return np.array(
        [
            int.from_bytes(
                hashlib.blake2b(string[i : i + k].encode(), digest_size=8).digest(),
                "little",
                signed=True,
            )
            for i in range(len(string) - k + 1)
        ],
        dtype=np.int64,
    )


def _fingerprint(code: str, boilerplate=None):
    import copydetect.utils
    from copydetect import CodeFingerprint

    copydetect.utils.hashed_kgrams = _stable_kgram_hashes  # looked up there at each call
    return CodeFingerprint(
        "submission.py", K, WINDOW, boilerplate=boilerplate, language="python", fp=io.StringIO(code)
    )


def compare(
    codes: dict[str, str],
    boilerplate_code: str,
    threshold: float = THRESHOLD,
    module: str = "",
    skipped: dict[str, str] | None = None,
) -> Report:
    """Compare every pair of students' code, `boilerplate_code` excluded."""
    from copydetect import compare_files

    boilerplate = sorted(_fingerprint(boilerplate_code).hashes)
    prints = {s: _fingerprint(code, boilerplate) for s, code in sorted(codes.items())}
    pairs = []
    for a, b in itertools.combinations(sorted(prints), 2):
        tokens, (share_a, share_b), (slices_a, slices_b) = compare_files(prints[a], prints[b])
        pairs.append(
            Pair(
                a,
                b,
                float(share_a),
                float(share_b),
                int(tokens),
                codes[a],
                codes[b],
                _ranges(slices_a),
                _ranges(slices_b),
            )
        )
    pairs.sort(key=lambda p: (-p.share, p.a, p.b))
    return Report(module, sorted(prints), dict(skipped or {}), pairs, threshold)


def _ranges(slices) -> list[tuple[int, int]]:
    return [(int(s), int(e)) for s, e in zip(*slices)] if len(slices) and len(slices[0]) else []


def similarity(
    course: Course, m: Module, threshold: float = THRESHOLD, course_root: Path | None = None
) -> Report:
    """The submissions of `m` compared, with the student version's code as boilerplate."""
    release_path = course.release_notebook(m)
    if not release_path.is_file():
        raise CourseError(
            f"no student version at {release_path}: run `tito nbgrader generate {m.name}` first"
        )
    release = nbformat.read(release_path, as_version=4)
    codes, skipped = {}, {}
    limit = course.grading_limits["output_mb"] << 20
    for student in course.students("submitted", m, course_root):
        try:
            nb = nbformat.reads(
                read_regular(course.submission_notebook(m, student, course_root), limit).decode(
                    "utf-8"
                ),
                as_version=4,
            )
            code = written_code(nb, release)
            if len(code) > MAX_CODE:
                skipped[student] = (
                    f"{len(code):,} characters of its own code, more than the {MAX_CODE:,} compared"
                )
                continue
            codes[student] = code
        except Exception as e:  # unreadable, too large or not a notebook: named, never compared
            skipped[student] = (
                f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            )
    if len(codes) < 2:
        raise CourseError(f"{len(codes)} readable submission(s) of {m.name}: nothing to compare")
    boilerplate = "\n\n".join(c.source for c in release.cells if c.cell_type == "code")
    return compare(codes, boilerplate, threshold, m.name, skipped)


def to_html(report: Report) -> str:
    """A page of its own: no script, nothing fetched; the code of each listed pair side by side
    with the shared fragments in bold, every byte of it escaped and sanitised."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(p.a)}</td><td>{e(p.b)}</td><td>{p.share_a:.2f}</td><td>{p.share_b:.2f}</td>"
        f"<td>{p.tokens}</td></tr>"
        for p in report.flagged
    )
    sections = "".join(
        f"<h2>{e(p.a)} and {e(p.b)}: {p.share_a:.0%} and {p.share_b:.0%} shared</h2>"
        f'<div class="pair"><div>{_code(p.a, p.code_a, p.copied_a)}</div>'
        f"<div>{_code(p.b, p.code_b, p.copied_b)}</div>"
        "</div>"
        for p in report.flagged
    )
    skipped = "".join(f"<li>{e(s)}: {e(why)}</li>" for s, why in sorted(report.skipped.items()))
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{e(report.module)}: similar submissions</title><style>"
        "body { font-family: sans-serif; margin: 2em; } table { border-collapse: collapse; } "
        "td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; } "
        ".pair { display: flex; gap: 1em; } "
        ".pair > div { flex: 1; overflow-x: auto; } "
        "pre { font-size: 0.8em; background: #f6f6f6; } "
        "strong { background: #ffd54f; font-weight: normal; } pre { line-height: 1.35; }"
        "</style></head><body>"
        f"<h1>{e(report.module)}: similar submissions</h1>"
        f"<p>{len(report.compared)} submissions compared, {len(report.pairs)} pairs; listed: the "
        f"{len(report.flagged)} pair(s) where either side has at least "
        f"{report.threshold:.0%} of its code in "
        f"fragments of {K + WINDOW - 1} characters or more that the other has too, "
        f"{MIN_SHARED} characters at "
        "least (names and strings normalised; the student version's code left out). "
        "Shared fragments are in "
        "bold.</p><table><tr><th>student</th><th>student</th><th>share of the first</th>"
        f"<th>share of the second</th><th>shared characters</th></tr>{rows}</table>{sections}"
        + (f"<h2>Not compared</h2><ul>{skipped}</ul>" if skipped else "")
        + "</body></html>\n"
    )


def _code(student: str, code: str, copied: list[tuple[int, int]]) -> str:
    """`code` escaped, the `copied` ranges in <strong>, through the sanitiser."""
    out, at = [], 0
    for start, end in sorted(copied):
        start = max(start, at)
        out += [html.escape(code[at:start]), "<strong>", html.escape(code[start:end]), "</strong>"]
        at = max(at, end)
    out.append(html.escape(code[at:]))
    return sanitize(f"<h3>{html.escape(student)}</h3><pre>{''.join(out)}</pre>")
