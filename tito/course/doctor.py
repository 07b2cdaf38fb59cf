"""Checks behind `tito system doctor`: Python, dependencies, kernel, repository layout."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .settings import Course, CourseError

REQUIRED = [
    "numpy",
    "jupytext",
    "nbformat",
    "nbclient",
    "ipykernel",
    "nbgrader",
    "nbdev",
    "matplotlib",
    "typer",
    "rich",
    "omegaconf",
    "scikit-learn",
]
FIX_INSTALL = "run `make install` (or `pip install -e '.[test]'`) in the repository"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(start: Path | None = None) -> list[Check]:
    checks = [
        Check(
            "python",
            sys.version_info >= (3, 11),
            sys.version.split()[0],
            "use Python 3.11 or newer",
        )
    ]
    for dist in REQUIRED:
        try:
            checks.append(Check(dist, True, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            checks.append(Check(dist, False, "not installed", FIX_INSTALL))
    try:
        # may be missing: the check says so
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
        checks.append(
            Check(
                "python3 kernel",
                "python3" in specs,
                specs.get("python3", "missing"),
                "python -m ipykernel install --sys-prefix",
            )
        )
    except Exception as e:  # doctor reports, never crashes
        checks.append(Check("python3 kernel", False, str(e), FIX_INSTALL))
    try:
        course = Course(start)
    except CourseError as e:
        return checks + [Check("repository", False, str(e), "cd into the repository root")]
    checks.append(Check("repository", True, str(course.root)))
    # doctor alone reaches into the grader, to check that its jail works
    from .grading import jail

    try:
        jail.check(course.grading)
        checks.append(Check("grading jail", True, "bubblewrap (user, PID and network namespaces)"))
        checks.append(
            Check("grading memory bound", True, "a control group: all memory, kernel included")
            if jail.kernel_memory_bounded()
            else Check(
                "grading memory bound",
                False,
                f"user pages only: {jail.UNBOUNDED_KERNEL_MEMORY}",
                "grade as root or from a delegated control group",
            )
        )
    except jail.JailError as e:
        checks.append(Check("grading jail", False, str(e), "sudo apt-get install bubblewrap"))
    for key in ["modules", "package", "source", "release"]:
        d = course.directory(key)
        checks.append(
            Check(
                f"{key}/ folder",
                d.is_dir(),
                str(d.relative_to(course.root)),
                "check out the repository again; this folder is part of it",
            )
        )
    for m in course.modules:
        checks.append(
            Check(
                f"{m.name} source",
                m.source.is_file(),
                str(m.source.relative_to(course.root)),
                "restore it from git",
            )
        )
        checks.append(
            Check(
                f"{m.name} student version",
                course.release_notebook(m).is_file(),
                str(course.release_notebook(m).relative_to(course.root)),
                f"tito nbgrader generate {m.name}",
            )
        )
    try:
        # may be missing (not exported yet): the check says so
        import tinytorch.core.tensor  # noqa: F401

        checks.append(Check("tinytorch importable", True, "tinytorch.core.tensor"))
    except Exception as e:
        checks.append(
            Check("tinytorch importable", False, f"{type(e).__name__}: {e}", "tito export --all")
        )
    return checks
