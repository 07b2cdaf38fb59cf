"""Instructor side: modules/ -> assignments/ -> release/ with nbgrader."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat

from .catalogue import load, release_text
from .export import build_source_notebook
from .nbgrader_setup import api, check, quiet
from .notebooks import FINGERPRINTS_FILE
from .settings import Course, Module


def generate(course: Course, m: Module, course_root: Path | None = None) -> Path:
    """Build the instructor notebook, then the student version with nbgrader generate_assignment.

    With `course_root` (tests), the instructor notebook is copied there and the release is
    written there, so the repository is not touched.
    """
    src, _ = build_source_notebook(course, m)
    root = Path(course_root or course.root).resolve()
    if root != course.root:
        dest = course.source_notebook(m, root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    release_dir = root / course.directory("release").name / m.name
    # nbgrader deletes the old student version before writing the new one; keep a copy so
    # that a failed generation leaves the previous one in place.
    with tempfile.TemporaryDirectory() as tmp:
        backup = Path(tmp) / "release"
        if release_dir.exists():
            shutil.copytree(release_dir, backup)
        try:
            with quiet():
                check(
                    api(course, root).generate_assignment(m.name, force=True, create=True),
                    f"generate_assignment {m.name}",
                )
            if m.mistakes:  # the catalogue's fingerprints, for the student's notebook to name
                reference = nbformat.read(src, as_version=4)
                text = release_text(reference, load(m.mistakes.read_text(encoding="utf-8")))
                (release_dir / FINGERPRINTS_FILE).write_text(text, encoding="utf-8")
        except BaseException:
            if backup.exists():
                shutil.rmtree(release_dir, ignore_errors=True)
                shutil.copytree(backup, release_dir)
            raise
    out = release_dir / f"{m.notebook}.ipynb"
    if not out.is_file():
        raise FileNotFoundError(f"nbgrader reported success but wrote no {out}")
    return out
