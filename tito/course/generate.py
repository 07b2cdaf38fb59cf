"""Instructor side: modules/ -> assignments/ -> release/ with nbgrader."""
from __future__ import annotations

import shutil
from pathlib import Path

from .export import build_source_notebook
from .nbgrader_setup import api, check, nbgrader_config, quiet
from .settings import Course, Module


def generate(course: Course, m: Module, course_root: Path | None = None) -> Path:
    """Build the instructor notebook, then the student version with nbgrader generate_assignment.

    With `course_root` (tests), the instructor notebook is copied there and the release is
    written there, so the repository is not touched.
    """
    src, _ = build_source_notebook(course, m)
    root = Path(course_root or course.root).resolve()
    cfg = nbgrader_config(course, root).CourseDirectory
    if root != course.root:
        dest = root / cfg.source_directory / m.name / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    with quiet():
        check(api(course, root).generate_assignment(m.name, force=True, create=True), f"generate_assignment {m.name}")
    out = root / cfg.release_directory / m.name / f"{m.notebook}.ipynb"
    if not out.is_file():
        raise FileNotFoundError(f"nbgrader reported success but wrote no {out}")
    return out
