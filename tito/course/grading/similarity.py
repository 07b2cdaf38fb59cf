"""Similar submissions: which students' code shares long fragments.

What is compared is what runs, not how it is typed. Each code cell is parsed (`ast`) and written
back (`ast.unparse`): comments, docstrings and statements that do nothing (`pass`, a bare
`None` or `...`) are gone and every statement stands on its own line, so trailing `;`, padding
lines and reformatting change nothing. A cell that does not parse is compared as typed, comment
lines left out. Code that `exec`, `eval` or `compile` runs from a string written out in the
submission is compared as code; a submission that runs code built from a string at all is named
("runs code built from a string"), since what such a string holds can be hidden from any reader.
Functions and classes that no graded function calls (helpers never reached from the functions
the student version defines) are left out of the comparison and named: padding a copy with them
does not dilute its share, and textbook helpers nobody calls do not make two students look alike.

What a student wrote is every line of that code that the release notebook (read the same way, and
as typed) does not hold. copydetect fingerprints it by winnowing, as MOSS does: hashes of every
K-character run of the code with names and strings normalised by copydetect's tokenizer (renamed
variables do not hide a copy; numbers stay as written), a minimum kept in every window of W
hashes, matched wherever they stand (reordered statements do not hide one either). Every pair is
compared; a pair is listed when either side has at least `threshold` of its code in fragments the
other also has, and they share at least MIN_SHARED characters.

The submissions are data: read as regular files up to the size limit, parsed as notebooks (and
their code by `ast`, which never runs it), and every byte of their code is escaped and then passed
through display.sanitize before the page shows it; a long code is shown as its shared fragments.
"""

from __future__ import annotations

import ast
import hashlib
import html
import io
import itertools
import tokenize
from dataclasses import dataclass, field
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
# characters of one side's code a page shows; a longer code shows its shared fragments only
SHOWN = 20_000
SHOWN_PAIRS = 100  # listed pairs whose code the page shows side by side, most similar first
# Calls that run code built from a string: the submission is named, literal strings are compared.
STRING_RUNNERS = {"exec", "eval", "compile", "__import__", "FunctionType"}


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
    notes: dict[str, list[str]] = field(default_factory=dict)  # student -> Written.notes()

    @property
    def flagged(self) -> list[Pair]:
        return [p for p in self.pairs if p.share >= self.threshold and p.tokens >= MIN_SHARED]


@dataclass
class Written:
    code: str  # what is compared: the student's own lines of the code that runs
    helpers: list[str] = field(default_factory=list)  # left out: defined, never reached
    from_strings: list[str] = field(default_factory=list)  # calls that run code from a string

    def notes(self) -> list[str]:
        notes = []
        if self.from_strings:
            notes.append(f"runs code built from a string ({', '.join(self.from_strings)})")
        if self.helpers:
            notes.append(
                f"left out: {len(self.helpers)} function(s) or class(es) that no graded function "
                f"calls ({', '.join(self.helpers[:10])}{', ...' if len(self.helpers) > 10 else ''})"
            )
        return notes


def _no_op(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Pass) or (
        isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
    )


NO_OPS = {"None", "pass", "...", ""}
# Statement fields that hold blocks of statements (try's handlers and match's cases hold nodes
# that hold blocks).
_BLOCKS = ("body", "orelse", "finalbody")
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _statements(tree: ast.Module):
    """Every statement of `tree`, blocks within blocks, never walking into an expression (an
    expression however deep costs nothing here)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        for name in _BLOCKS:
            todo += getattr(node, name, [])
        for holder in _holders(node):
            todo += holder.body


def _parsed(source: str) -> ast.Module | None:
    """The code of `source` with docstrings, bare constants (None, ..., numbers) and pass taken
    out of every block (a body left empty keeps one pass); None if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in [tree, *_statements(tree), *(h for n in _statements(tree) for h in _holders(n))]:
        for name in _BLOCKS:
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                kept = [s for s in block if not _no_op(s)]
                if not kept and name == "body" and not isinstance(node, ast.Module):
                    kept = [ast.Pass()]
                setattr(node, name, kept)
    return tree


def _holders(node) -> list:
    return [*getattr(node, "handlers", []), *getattr(node, "cases", [])]


def _typed_lines(source: str) -> list[str]:
    """Code that does not parse, or is too deep to write back, as typed: comments, a trailing `;`
    and lines holding only None, pass or ... left out."""
    lines = source.splitlines()
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                row, col = token.start
                lines[row - 1] = lines[row - 1][:col]
    except (tokenize.TokenError, SyntaxError):  # unclosed brackets or strings: comments as lines
        lines = [line for line in lines if not line.strip().startswith("#")]
    out = []
    for line in lines:
        line = line.rstrip().rstrip(";").rstrip()
        if line.strip() not in NO_OPS:
            out.append(line)
    return out


def _written_back(node: ast.stmt, source: str) -> list[str]:
    try:
        return ast.unparse(node).splitlines()
    except RecursionError:  # an expression too deep to write back: that statement as typed
        return _typed_lines(ast.get_source_segment(source, node) or "")


def _strings_run(trees: list[ast.Module]) -> tuple[list[str], list[str]]:
    """(the built-ins a submission can run code from a string with and refers to, the literal
    strings it passes them: written out, or a name bound to one at the top of a cell). Referring
    is enough (`run = exec`); a name imported from a module (`from re import compile`) is that
    module's, and an attribute counts only on `builtins` or as `FunctionType`."""
    nodes = [n for tree in trees for n in ast.walk(tree)]
    imported = {
        a.asname or a.name
        for n in nodes
        if isinstance(n, ast.ImportFrom) and n.module != "builtins"
        for a in n.names
    }
    runners = STRING_RUNNERS - imported
    literals = {
        target.id: node.value.value
        for tree in trees
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    aliases = set(runners)  # names bound to a runner at the top of a cell: run = exec
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
                if node.value.id in runners:
                    aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    names, strings = set(), {}
    for node in nodes:
        if isinstance(node, ast.Name) and node.id in runners:
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and (
            node.attr == "FunctionType"
            or (
                node.attr in runners
                and isinstance(node.value, ast.Name)
                and node.value.id == "builtins"
            )
        ):
            names.add(node.attr)
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else ""
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            called = func.attr if func.value.id == "builtins" else ""
        if called not in aliases or called in ("__import__",):
            continue
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            strings[first.value] = None
        elif isinstance(first, ast.Name) and first.id in literals:
            strings[literals[first.id]] = None
    return sorted(names), list(strings)  # each string once, however often it runs


def _defs(trees: list[ast.Module]) -> dict[str, list[ast.stmt]]:
    """Functions and classes defined outside any function: at the top of a cell, or in an if, a
    try, a with or a loop there."""
    found: dict[str, list[ast.stmt]] = {}
    todo = [s for tree in trees for s in tree.body]
    while todo:
        node = todo.pop()
        if isinstance(node, _DEFS):
            found.setdefault(node.name, []).append(node)
            continue
        for name in _BLOCKS:
            todo += getattr(node, name, [])
        for holder in _holders(node):
            todo += holder.body
    return found


def _unreached(trees: list[ast.Module], graded: set[str]) -> set[str]:
    """Functions and classes that no graded function (one the release defines) reaches: by
    calling or naming them (also as a string, as in globals()["name"]), through other functions,
    or by binding them to a graded name (adam_step = _impl, SGD.step = _step)."""
    defs = _defs(trees)

    def named(node) -> list[str]:
        return [
            n.id if isinstance(n, ast.Name) else n.value
            for n in ast.walk(node)
            if (isinstance(n, ast.Name) and n.id in defs)
            or (isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in defs)
        ]

    def binds_graded(node) -> bool:
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        for t in targets:
            while isinstance(t, ast.Attribute):
                t = t.value
            if isinstance(t, ast.Name) and t.id in graded:
                return True
        return False

    todo = [n for n in defs if n in graded]
    for tree in trees:
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and binds_graded(node):
                todo += named(node.value) if node.value is not None else []
    reached = set()
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        for node in defs[name]:
            todo += named(node)
    return set(defs) - reached


@dataclass
class Provided:
    """What the release notebook gives every student, read once per class."""

    sources: set[str]  # its code cells as they are: a submission's unchanged cell adds nothing
    lines: set[str]  # its lines, as typed and as read by `ast`
    graded: set[str]  # the functions and classes it defines
    boilerplate: str  # its code as read by `ast`, for copydetect's boilerplate


def provided(release) -> Provided:
    sources = [c.source for c in release.cells if c.cell_type == "code"]
    trees = [(src, _parsed(src)) for src in sources]
    lines = {SOLUTION_BEGIN, SOLUTION_END}
    lines |= {line.strip() for src in sources for line in src.splitlines()}
    read = [ast.unparse(t) if t is not None else src for src, t in trees]
    lines |= {line.strip() for text in read for line in text.splitlines()}
    graded = {
        node.name
        for _, t in trees
        if t is not None
        for node in t.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    return Provided(set(sources), lines, graded, "\n\n".join(read))


class TooLong(ValueError):
    """A student's changed code (with the strings it runs) is longer than MAX_CODE characters."""


def _within_bounds(texts: list[str]) -> None:
    """Raise TooLong before parsing code past MAX_CODE characters, comments not counted (reading
    code costs memory and time in proportion; no submission of ordinary size comes near). Text
    past four times MAX_CODE is not even read for its comments."""
    total = sum(map(len, texts))
    if total <= 4 * MAX_CODE:
        total = sum(len(line) for text in texts for line in _typed_lines(text))
    if total > MAX_CODE:
        raise TooLong(f"{total:,} characters of its own code, more than the {MAX_CODE:,} compared")


def written(submission, given: Provided) -> Written:
    """The code a student wrote, read as it runs: the lines of their code that the release does
    not hold (`given`), in order, blank lines left out; helpers no graded function calls left
    out and named, code run from strings named."""
    sources = [
        c.source
        for c in submission.cells
        if c.cell_type == "code" and c.source not in given.sources
    ]
    _within_bounds(sources)
    cells = [(src, _parsed(src)) for src in sources]
    trees = [t for _, t in cells if t is not None]
    runners, strings = _strings_run(trees)
    _within_bounds(sources + strings)
    cells += [(src, t) for src in strings if (t := _parsed(src)) is not None]
    trees = [t for _, t in cells if t is not None]
    helpers = _unreached(trees, given.graded)
    lines = []
    for source, tree in cells:
        if tree is None:
            lines += _typed_lines(source)
            continue
        for node in tree.body:
            if not (isinstance(node, _DEFS) and node.name in helpers):
                lines += _written_back(node, source)
    code = "\n".join(line for line in lines if line.strip() and line.strip() not in given.lines)
    return Written(code, sorted(helpers), runners)


def _stable_kgram_hashes(string: str, k: int) -> np.ndarray:
    """The hash of every k-character run of `string`, the same in every process."""
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
    """copydetect's fingerprint of `code` (its tokenizer's normalised text), with stable hashes.

    copydetect hashes each run with Python's hash(), which changes from process to process (hash
    randomisation), and with it which runs winnowing keeps: the same submissions would give
    slightly different figures each run. So the fingerprint's documented `hashes`, `hash_idx`
    and `token_coverage` are set again from copydetect's winnowing of stable hashes, the
    boilerplate's runs left out.
    """
    # copydetect (with pygments): a third of a second, paid only when comparing
    from copydetect import CodeFingerprint
    from copydetect.utils import get_token_coverage, winnow

    fp = CodeFingerprint("submission.py", K, WINDOW, language="python", fp=io.StringIO(code))
    hashes, idx = winnow(_stable_kgram_hashes(fp.filtered_code, K), WINDOW, remove_duplicates=False)
    if boilerplate is not None and len(boilerplate):
        kept = ~np.isin(hashes, boilerplate)
        hashes, idx = hashes[kept], idx[kept]
    fp.hashes, fp.hash_idx = set(hashes.tolist()), {}
    for h, i in zip(hashes.tolist(), idx.tolist()):
        fp.hash_idx.setdefault(h, []).append(i)
    fp.token_coverage = get_token_coverage(fp.hash_idx, K, len(fp.filtered_code))
    return fp


def compare(
    codes: dict[str, str],
    boilerplate_code: str,
    threshold: float = THRESHOLD,
    module: str = "",
    skipped: dict[str, str] | None = None,
    notes: dict[str, list[str]] | None = None,
) -> Report:
    """Compare every pair of students' code, `boilerplate_code` excluded."""
    # copydetect (with pygments): a third of a second, paid only when comparing
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
    return Report(module, sorted(prints), dict(skipped or {}), pairs, threshold, dict(notes or {}))


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
    codes, skipped, notes = {}, {}, {}
    given = provided(release)
    limit = course.grading.max_submission_mb << 20
    for student in course.students("submitted", m, course_root):
        try:
            nb = nbformat.reads(
                read_regular(course.submission_notebook(m, student, course_root), limit).decode(
                    "utf-8"
                ),
                as_version=4,
            )
            try:
                own = written(nb, given)
            except TooLong as e:
                skipped[student] = str(e)
                continue
            codes[student] = own.code
            if own.notes():
                notes[student] = own.notes()
        except Exception as e:  # unreadable, too large or not a notebook: named, never compared
            skipped[student] = (
                f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            )
    if len(codes) < 2:
        raise CourseError(f"{len(codes)} readable submission(s) of {m.name}: nothing to compare")
    return compare(codes, given.boilerplate, threshold, m.name, skipped, notes)


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
        f'<div class="pair"><div tabindex="0">{_code(p.a, p.code_a, p.copied_a)}</div>'
        f'<div tabindex="0">{_code(p.b, p.code_b, p.copied_b)}</div>'
        "</div>"
        for p in report.flagged[:SHOWN_PAIRS]
    )
    if len(report.flagged) > SHOWN_PAIRS:
        sections += (
            f"<p>The code of the other {len(report.flagged) - SHOWN_PAIRS} listed pairs is not "
            f"shown: the page shows the {SHOWN_PAIRS} most similar.</p>"
        )
    skipped = "".join(f"<li>{e(s)}: {e(why)}</li>" for s, why in sorted(report.skipped.items()))
    notes = "".join(
        f"<li>{e(s)}: {e('; '.join(said))}</li>" for s, said in sorted(report.notes.items())
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(report.module)}: similar submissions</title><style>"
        "body { font-family: sans-serif; margin: 2em; } table { border-collapse: collapse; } "
        "td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; } "
        ".pair { display: flex; gap: 1em; } "
        ".pair > div { flex: 1; overflow-x: auto; } "
        "pre { font-size: 0.8em; background: #f6f6f6; } "
        "strong { background: #ffd54f; font-weight: normal; } pre { line-height: 1.35; }"
        "</style></head><body><main>"
        f"<h1>{e(report.module)}: similar submissions</h1>"
        f"<p>{len(report.compared)} submissions compared, {len(report.pairs)} pairs; listed: the "
        f"{len(report.flagged)} pair(s) where either side has at least "
        f"{report.threshold:.0%} of its code in "
        f"fragments of {K + WINDOW - 1} characters or more that the other has too, "
        f"{MIN_SHARED} characters at "
        "least (the code as it runs: comments, docstrings and statements that do nothing left "
        "out; names and strings normalised; the student version's code left out). "
        "Shared fragments are in "
        "bold.</p><table><tr><th>student</th><th>student</th><th>share of the first</th>"
        f"<th>share of the second</th><th>shared characters</th></tr>{rows}</table>{sections}"
        + (f"<h2>Read with care</h2><ul>{notes}</ul>" if notes else "")
        + (f"<h2>Not compared</h2><ul>{skipped}</ul>" if skipped else "")
        + "</main></body></html>\n"
    )


def _code(student: str, code: str, copied: list[tuple[int, int]]) -> str:
    """`code` escaped, the `copied` ranges in <strong>, through the sanitiser; a code longer than
    SHOWN characters shows its shared fragments only, up to SHOWN characters."""
    if len(code) > SHOWN:
        fragments, length = [], 0
        for start, end in sorted(copied):
            fragments.append(code[start : min(end, start + SHOWN - length)])
            length += len(fragments[-1])
            if length >= SHOWN:
                break
        shown = "".join(f"<strong>{html.escape(f)}</strong>\n…\n" for f in fragments)
        said = f"{len(code):,} characters: the shared fragments only, {length:,} characters"
        return sanitize(f"<h3>{html.escape(student)}</h3><p>{said}</p><pre>{shown}</pre>")
    out, at = [], 0
    for start, end in sorted(copied):
        start = max(start, at)
        out += [html.escape(code[at:start]), "<strong>", html.escape(code[start:end]), "</strong>"]
        at = max(at, end)
    out.append(html.escape(code[at:]))
    return sanitize(f"<h3>{html.escape(student)}</h3><pre>{''.join(out)}</pre>")
