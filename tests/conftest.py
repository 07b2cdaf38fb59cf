"""Shared fixtures: a throw-away copy of the course for tests that generate, grade or export."""

from __future__ import annotations

import configparser
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The hostile-submission tests fail when any file of the environment changes during a batch,
# so neither the test processes nor anything they start (the `tito` command, kernels, Dask
# workers) writes bytecode, or pytest's rewritten-module cache, next to the sources while
# another test file runs beside the batch.
sys.dont_write_bytecode = True
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
# Before any test module imports nbformat (tito/__init__.py says why).
import tito  # noqa: E402, F401
from tito.course.grading.jail import kernel_memory_bounded  # noqa: E402


def make_course_copy(dest: Path, **grading) -> Path:
    """Copy what a course needs (settings, sources, pyproject) into `dest`; override [grading]
    values.

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


# The memory limit of the graded course (the hostile batch on Dask, the catalogue, manual
# grading). Where a control group bounds each jail (as root, or in a delegated group), 1,000 MB:
# far above what an honest job holds (under 100 MB in all, about 620 MB of address space for
# the kernel, its threads' reservations included), so that a hoard passes it after about half a
# CPU-second of touching pages, well within a cell's time limit on a loaded machine (at 2,500 MB
# a hoard slowed by a busy machine was once stopped by the cell limit first). Under the memory
# watch (no group) 2,500 MB, as in the unprivileged batch: the watch counts a page that forked
# processes share once per process, and the CPU hog's 60 forks would pass 1,000 MB.
BATCH_MEMORY_MB = 1000 if kernel_memory_bounded() else 2500


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory):
    """A course copy with the 06 student version generated (gradebook included) and short limits.

    The slowest graded cell takes under 1 s in the judge on a quiet machine, and the judge waits
    for a call the machine holds back (processes.Allowance); a runaway cell burns its whole
    timeout, so the timeout is kept short."""
    from tito.course.generate import generate
    from tito.course.settings import Course

    root = make_course_copy(
        tmp_path_factory.mktemp("course"),
        cell_timeout_seconds=10,
        memory_limit_mb=BATCH_MEMORY_MB,
        submission_timeout_seconds=400,
        max_processes=64,
        scratch_mb=64,
    )
    course = Course(root)
    generate(course, course.module("06"))
    return course


# Summary lines (e.g. the catalogue's catch rate) for pytest's terminal summary. With xdist
# the tests run in worker processes, so the lines travel through pytest's cache on disk and
# the main process prints those written during this session.
SUMMARY_KEY = "tinytorch/summaries"


def report_summary(config, title: str, line: str) -> None:
    if getattr(config, "cache", None) is None:  # run with -p no:cacheprovider
        return
    entries = [e for e in config.cache.get(SUMMARY_KEY, []) if e["title"] != title]
    config.cache.set(SUMMARY_KEY, entries + [{"title": title, "line": line, "time": time.time()}])


def pytest_sessionstart(session):
    session.config._summary_since = time.time()


def pytest_terminal_summary(terminalreporter, config):
    since = getattr(config, "_summary_since", 0.0)
    if getattr(config, "cache", None) is None:
        return
    for entry in config.cache.get(SUMMARY_KEY, []):
        if entry["time"] >= since:
            terminalreporter.write_sep("-", entry["title"])
            terminalreporter.write_line(entry["line"])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so a fixture can tell that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
