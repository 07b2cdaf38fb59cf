"""The example submissions a module bundles (settings.ini `examples`: a YAML file beside its
source), each built from the student version: answers filled in or not, a known mistake
(mistakes.yaml) written in its region, cells edited."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import yaml

from .notebooks import by_grade_id, dumps, filled, replace_region, write_if_changed
from .settings import Course, CourseError, Module

EXAMPLES_DIR = "examples/submissions"
KEYS = ("answers", "mistake", "cells")
STUDENT = re.compile(r"[A-Za-z0-9_-]+")  # the example's file name


def with_mistake(nb: nbformat.NotebookNode, m: Module, mistake: str) -> nbformat.NotebookNode:
    """`nb` with the region of the known mistake `mistake` (its id in m.mistakes) written as
    that mistake."""
    if m.mistakes is None:
        raise CourseError(f"{m.name}: settings.ini names no catalogue of known mistakes (mistakes)")
    try:
        text = m.mistakes.read_text(encoding="utf-8")
        entries = {e["id"]: e for e in yaml.safe_load(text)["mistakes"]}
    except (AttributeError, KeyError, TypeError, OSError, yaml.YAMLError) as e:
        raise CourseError(f"{m.name}: no catalogue of known mistakes to read ({e!r})") from None
    if not isinstance(mistake, str) or mistake not in entries:
        raise CourseError(f"{m.name}: no known mistake {mistake!r} in {m.mistakes}")
    entry = entries[mistake]
    try:
        return replace_region(nb, entry["region"], entry["code"], entry.get("index", 0))
    except (KeyError, StopIteration, TypeError, AttributeError) as e:
        raise CourseError(
            f"{m.name}: the known mistake {mistake!r} has no region to replace ({e!r})"
        ) from None


def build(course: Course, m: Module) -> dict[str, nbformat.NotebookNode]:
    """Each example of module `m`, by student name."""
    release = nbformat.read(course.release_notebook(m), as_version=4)
    instructor = nbformat.read(course.source_notebook(m), as_version=4)
    out = {}
    try:
        examples = yaml.safe_load(m.examples.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CourseError(f"{m.examples}: cannot be read: {e}") from None
    if not isinstance(examples, dict):
        raise CourseError(f"{m.examples}: not a mapping of student names to examples")
    for student, spec in examples.items():
        if not (isinstance(student, str) and STUDENT.fullmatch(student)):
            raise CourseError(f"{m.examples}: {student!r} is no student name ({STUDENT.pattern})")
        if not isinstance(spec, dict) or not isinstance(spec.get("cells", {}), dict):
            raise CourseError(f"{m.examples}: {student}: not a mapping of {', '.join(KEYS)}")
        if unknown := sorted(set(spec) - set(KEYS)):
            raise CourseError(f"{m.examples}: {student}: unknown key(s) {', '.join(unknown)}")
        answers = spec.get("answers")
        if answers not in ("reference", "none"):
            raise CourseError(
                f"{m.examples}: {student}: answers is {answers!r}, not reference or none"
            )
        nb = filled(release, instructor) if answers == "reference" else release
        if "mistake" in spec:
            try:
                nb = with_mistake(nb, m, spec["mistake"])
            except CourseError as e:
                raise CourseError(f"{m.examples}: {student}: {e}") from None
        for grade_id, source in spec.get("cells", {}).items():
            nb = copy.deepcopy(nb)  # the release stays as read
            if grade_id not in by_grade_id(nb):
                raise CourseError(f"{m.examples}: {student}: no cell {grade_id!r} to edit")
            if not isinstance(source, str):
                raise CourseError(f"{m.examples}: {student}: cell {grade_id}'s source is no text")
            by_grade_id(nb)[grade_id].source = source
        out[student] = nb
    return out


def write(course: Course) -> list[Path]:
    """Write every module's examples to examples/submissions/<student>.ipynb."""
    out, declared = [], {}
    for m in course.modules:
        if m.examples is None:
            continue
        if not course.release_notebook(m).is_file():
            raise CourseError(
                f"no student version at {course.release_notebook(m)}: "
                f"run `tito nbgrader generate {m.name}`"
            )
        for student, nb in build(course, m).items():
            if student in declared:
                raise CourseError(
                    f"{m.examples}: {student} is an example of {declared[student]} already"
                )
            declared[student] = m.name
            path = course.root / EXAMPLES_DIR / f"{student}.ipynb"
            write_if_changed(path, dumps(nb))
            out.append(path)
    return out
