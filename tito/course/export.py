"""Notebook -> tinytorch package module, with nbdev."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from nbdev.export import nb_export

from .notebooks import dumps, read_source, write_if_changed
from .settings import Course, CourseError, Module


def build_source_notebook(course: Course, m: Module) -> tuple[Path, bool]:
    """modules/<m>/<x>_dev.py -> assignments/<m>/<x>.ipynb (the instructor notebook)."""
    if not m.source.is_file():
        raise CourseError(f"module source not found: {m.source}")
    out = course.source_notebook(m)
    return out, write_if_changed(out, dumps(read_source(m.source)))


def export_notebook(course: Course, notebook: Path, m: Module) -> Path:
    """Export the `#| export` cells of `notebook` into the package file of module `m`.

    nbdev writes the file; we only check that it went where settings.ini says it should.
    """
    before = m.export.stat().st_mtime_ns if m.export.exists() else None
    with contextlib.chdir(course.root):
        # nbdev skips exporting under IN_TEST; an export asked for explicitly must happen.
        env = os.environ.pop("IN_TEST", None)
        try:
            nb_export(str(notebook), lib_path=str(course.directory("package")))
        finally:
            if env is not None:
                os.environ["IN_TEST"] = env
    if not m.export.exists() or m.export.stat().st_mtime_ns == before:
        raise CourseError(
            f"nbdev wrote nothing to {m.export.relative_to(course.root)} from {notebook}: "
            "does the notebook keep its '#| default_exp' cell and '#| export' cells?"
        )
    return m.export


def export_reference(course: Course, m: Module) -> Path:
    """Instructor side: modules/ source -> assignments/ notebook -> tinytorch/ file."""
    nb_path, _ = build_source_notebook(course, m)
    return export_notebook(course, nb_path, m)
