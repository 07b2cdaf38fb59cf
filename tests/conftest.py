"""Shared fixtures: a throw-away copy of the course for tests that generate, grade or export."""
from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def make_course_copy(dest: Path, **grading) -> Path:
    """Copy what a course needs (settings, sources, pyproject) into `dest`; override [grading] values.

    Generated folders are not copied: each test regenerates what it uses, so the copy
    also checks that generation works from the sources alone.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in ["modules", "tinytorch"]:
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")
    ini = configparser.ConfigParser()
    ini.read(REPO / "settings.ini", encoding="utf-8")
    for key, value in grading.items():
        ini["grading"][key] = str(value)
    with open(dest / "settings.ini", "w", encoding="utf-8") as f:
        ini.write(f)
    return dest


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory):
    """A course copy with the 06 student version generated (gradebook included) and short limits."""
    from tito.course.generate import generate
    from tito.course.settings import Course

    root = make_course_copy(tmp_path_factory.mktemp("course"), cell_timeout_seconds=30, memory_limit_mb=2500,
                            submission_timeout_seconds=400)
    course = Course(root)
    generate(course, course.module("06"))
    return course
