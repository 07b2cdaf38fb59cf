"""The grader's structure, read from its imports (`ast`, nothing imported): which files decide an
outcome, no cycle, views apart from grading, the course apart from the grader."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from tests.conftest import REPO, make_course_copy
from tito.course.grading.host import GRADING_PATH, grader_digest, grading_digests
from tito.course.settings import Course

COURSE_CODE = Path(__file__).parents[2] / "tito" / "course"
# What a person reads: pages and tables made from recorded outcomes and the gradebook.
VIEWS = ["feedback", "report", "analytics", "lms", "similarity", "formgrader"]
# Where grading happens: what a view must never pull in (and with it jails and processes).
GRADER = ["host", "job", "jail", "judge", "cluster", "cgroups", "processes", "syscalls"]


def _file(module: str) -> Path | None:
    """The file of a module under tito.course, if it is one."""
    if module != "tito.course" and not module.startswith("tito.course."):
        return None
    rel = Path(*module.split(".")[2:])
    for candidate in (COURSE_CODE / rel.with_suffix(".py"), COURSE_CODE / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports(path: Path) -> set[Path]:
    """The files under tito/course that `path` imports, at module level or in a function."""
    parts = ("tito", "course", *path.relative_to(COURSE_CODE).with_suffix("").parts)
    package = parts if path.name == "__init__.py" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found |= {f for f in map(_file, targets) if f is not None and f != path}
    return found


def closure(*start: Path) -> set[Path]:
    seen, todo = set(), list(start)
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo += imports(f)
    return seen


def _names(files) -> set[str]:
    return {str(f.relative_to(COURSE_CODE)) for f in files if f.name != "__init__.py"}


def test_the_grading_path_is_what_the_host_and_the_jailed_code_import():
    grading = COURSE_CODE / "grading"
    start = [
        grading / "host.py",
        grading / "jailed" / "execute.py",
        grading / "jailed" / "sandbox.py",
    ]
    assert _names(closure(*start)) == set(GRADING_PATH)


def test_no_module_of_the_course_imports_itself_back():
    files = sorted(COURSE_CODE.rglob("*.py"))
    graph = {f: imports(f) for f in files}
    cycles = []

    def visit(f, path):
        for g in graph.get(f, ()):
            if g == path[0]:
                cycles.append([p.name for p in path])
            elif g not in path and len(path) < 12:
                visit(g, path + [g])

    for f in files:
        visit(f, [f])
    assert cycles == []


def test_views_read_outcomes_and_scores_and_never_pull_in_the_grader():
    """A view imports the outcome (outcome.py) and the gradebook's scores (scores.py) within three
    steps, and nothing that runs or jails a submission."""
    grading = COURSE_CODE / "grading"
    data = {grading / "outcome.py", grading / "scores.py"}
    for view in VIEWS:
        start = grading / f"{view}.py"
        pulled = _names(closure(start))
        assert [g for g in GRADER if f"grading/{g}.py" in pulled] == [], view
        assert not any(n.startswith("grading/jailed") for n in pulled), view
        # shortest import path from the view to its data, when it reads any
        level, frontier, seen = 0, {start}, {start}
        while frontier and not frontier & data:
            frontier = {g for f in frontier for g in imports(f)} - seen
            seen |= frontier
            level += 1
        assert level <= 3, (view, level)


def test_the_course_imports_nothing_of_the_grader():
    """tito/course/*.py (settings, notebooks, nbgrader's set-up, export, the student's tools) never
    import tito/course/grading; `doctor`, which checks that the grading jail works, is the one
    module that calls into it."""
    for path in sorted(COURSE_CODE.glob("*.py")):
        if path.name == "doctor.py":
            continue
        into_grader = [f for f in imports(path) if "grading" in f.relative_to(COURSE_CODE).parts]
        assert into_grader == [], path.name


def test_editing_what_is_not_on_the_grading_path_changes_no_digest(tmp_path):
    """Outcomes keep the grader's digest (verify compares it): the example submissions' builder
    and the views are not on the grading path, the judge is."""
    code = tmp_path / "course"
    shutil.copytree(COURSE_CODE, code, ignore=shutil.ignore_patterns("__pycache__"))
    before = grader_digest(code)
    assert before == grader_digest()
    for name in ["examples.py", "grading/feedback.py", "grading/analytics.py"]:
        with open(code / name, "a", encoding="utf-8") as f:
            f.write("\n# edited\n")
    assert grader_digest(code) == before
    with open(code / "grading" / "judge.py", "a", encoding="utf-8") as f:
        f.write("\n# edited\n")
    assert grader_digest(code) != before


def test_editing_the_examples_changes_no_digest_an_outcome_keeps(tmp_path):
    """The example submissions and their declaration are course content, not grading: an
    outcome's digests (instructor notebook, package, configuration, grader) stay."""
    root = make_course_copy(tmp_path / "course")
    for folder in ("assignments", "examples"):
        shutil.copytree(REPO / folder, root / folder)
    before = grading_digests(Course(root), Course(root).module("06"))
    (root / "modules" / "06_optimizers" / "examples.yaml").write_text("alice: {answers: none}\n")
    for example in (root / "examples" / "submissions").glob("*.ipynb"):
        example.write_text("{}", encoding="utf-8")
    assert grading_digests(Course(root), Course(root).module("06")) == before


def _reason(line: str) -> bool:
    """A comment of a few words (not a linter's instruction) on the line."""
    comment = line.partition("#")[2].replace("noqa: F401", "").strip(" :()")
    return len(comment.split()) >= 3


def test_every_import_inside_a_function_says_why_it_waits():
    """An import made inside a function saves start-up time (or waits for a dependency that may
    be missing); a comment on it, or on the line before its block, says which."""
    silent = []
    for path in sorted((COURSE_CODE.parent).rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for func in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            body = [n for n in ast.walk(func) if isinstance(n, ast.Import | ast.ImportFrom)]
            for node in body:
                here = lines[node.lineno - 1 : node.end_lineno]
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                follows = above.startswith(("import ", "from ")) or _reason(above)
                if not (any(_reason(line) for line in here) or follows):
                    silent.append(f"{path.relative_to(COURSE_CODE.parents[1])}:{node.lineno}")
    assert silent == []
