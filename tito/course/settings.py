"""Read settings.ini, the course's single settings file."""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

SETTINGS_FILE = "settings.ini"
GRADEBOOK_FILE = "gradebook.db"  # nbgrader's, under the grading state's root


@dataclass(frozen=True)
class DisplayLimits:
    """The [display] section of settings.ini: what a page shows of a submission's outputs."""

    max_cells: int
    max_outputs_per_cell: int
    max_output_chars: int
    max_image_kb: int


class CourseError(Exception):
    """A problem the user can fix; the CLI prints it without a traceback."""


@dataclass(frozen=True)
class Module:
    name: str  # "06_optimizers"
    title: str
    source: Path  # percent-format source, absolute
    notebook: str  # notebook id inside the assignment ("optimizers")
    export: Path  # exported package file, absolute
    depends: tuple[str, ...]
    mistakes: Path | None = None  # the catalogue of known mistakes (diagnosis.py), absolute

    @property
    def number(self) -> str:
        return self.name.split("_", 1)[0]

    @property
    def short(self) -> str:
        return self.name.split("_", 1)[1]


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder holding settings.ini and modules/."""
    here = Path(start or Path.cwd()).resolve()
    for d in [here, *here.parents]:
        if (d / SETTINGS_FILE).is_file() and (d / "modules").is_dir():
            return d
    raise CourseError(
        f"not inside the course repository: no {SETTINGS_FILE} beside a modules/ folder in "
        f"{here} or any parent. Run tito from the repository root (the folder with settings.ini)."
    )


class Course:
    """The course as settings.ini describes it, rooted at `root`."""

    def __init__(self, root: Path | None = None):
        self.root = find_root(root)
        self._ini = configparser.ConfigParser()
        self._ini.read(self.root / SETTINGS_FILE, encoding="utf-8")

    @property
    def course_id(self) -> str:
        return self._ini["course"]["course_id"]

    def directory(self, key: str) -> Path:
        return self.root / self._ini["directories"][key]

    @property
    def cell_timeout(self) -> int:
        """The grader's time limit per cell ([grading] cell_timeout_seconds)."""
        return self.grading_limits["cell_timeout_seconds"]

    @property
    def student_cell_timeout(self) -> int:
        """The time limit of each cell `tito module complete` runs ([student]
        cell_timeout_seconds)."""
        return self._ini.getint("student", "cell_timeout_seconds", fallback=self.cell_timeout)

    @property
    def grading_limits(self) -> dict[str, int]:
        """The limits in [grading] (every key but `scheduler`), as integers."""
        return {k: self._ini["grading"].getint(k) for k in self._ini["grading"] if k != "scheduler"}

    @property
    def jail_files(self) -> list[str]:
        """The package files given to the jail ([package] jail_files), relative to the course
        root."""
        return self._package_setting("jail_files").split()

    @property
    def tensor_class(self) -> str:
        """The class whose objects cross the jail as data ([package] tensor_class,
        "module:Class")."""
        return self._package_setting("tensor_class")

    def _package_setting(self, key: str) -> str:
        value = self._ini.get("package", key, fallback="").strip()
        if not value:
            raise CourseError(
                f"{self.root / SETTINGS_FILE} has no [package] {key}, which grading needs"
            )
        return value

    @property
    def display_limits(self) -> DisplayLimits:
        """The limits in [display]: what a page shows of a submission."""
        return DisplayLimits(**{k: self._ini["display"].getint(k) for k in self._ini["display"]})

    @property
    def scheduler(self) -> str:
        """The Dask scheduler grading jobs go to ("" for this machine)."""
        return self._ini["grading"].get("scheduler", "").strip()

    @cached_property
    def modules(self) -> list[Module]:
        out = []
        for name in self._ini["course"]["modules"].split():
            sec = self._ini[f"module:{name}"]
            out.append(
                Module(
                    name=name,
                    title=sec["title"],
                    source=self.root / sec["source"],
                    notebook=sec["notebook"],
                    export=self.root / sec["export"],
                    depends=tuple(sec.get("depends", "").split()),
                    mistakes=self.root / sec["mistakes"] if sec.get("mistakes") else None,
                )
            )
        return out

    def module(self, key: str) -> Module:
        """Find a module by full name (06_optimizers), number (06, 6) or short name (optimizers)."""
        key = key.strip()
        for m in self.modules:
            if key in (m.name, m.number, m.short) or (key.isdigit() and int(key) == int(m.number)):
                return m
        names = ", ".join(m.name for m in self.modules)
        raise CourseError(f"unknown module {key!r}; the modules are: {names}")

    # Paths of one module's notebooks in the nbgrader layout <dir>/<assignment>/<notebook>.ipynb.
    # The grading state (the instructor notebooks nbgrader reads, submitted/, autograded/,
    # feedback/ and the gradebook) lives under a root: the repository, unless a test points
    # elsewhere. Every path of it is made here.
    def state_root(self, root: Path | None = None) -> Path:
        return Path(root or self.root).resolve()

    def gradebook(self, root: Path | None = None) -> Path:
        """The nbgrader gradebook: the one record of scores."""
        return self.state_root(root) / GRADEBOOK_FILE

    def source_notebook(self, m: Module, root: Path | None = None) -> Path:
        """The instructor notebook (tests and hidden tests) that nbgrader and the grader read."""
        return (
            self.state_root(root) / self.directory("source").name / m.name / f"{m.notebook}.ipynb"
        )

    def student_folder(self, key: str, m: Module, student: str, root: Path | None = None) -> Path:
        """<root>/<submitted, autograded or feedback>/<student>/<module>/"""
        return self.state_root(root) / self.directory(key).name / student / m.name

    def submission_notebook(self, m: Module, student: str, root: Path | None = None) -> Path:
        return self.student_folder("submitted", m, student, root) / f"{m.notebook}.ipynb"

    def students(self, key: str, m: Module, root: Path | None = None) -> list[str]:
        """The students with a folder for `m` under submitted/ (or autograded/, feedback/)."""
        folder = self.state_root(root) / self.directory(key).name
        return (
            sorted(p.name for p in folder.iterdir() if (p / m.name).is_dir())
            if folder.is_dir()
            else []
        )

    def release_notebook(self, m: Module) -> Path:
        return self.directory("release") / m.name / f"{m.notebook}.ipynb"

    def workspace_notebook(self, m: Module) -> Path:
        return self.directory("workspace") / m.name / f"{m.notebook}.ipynb"
