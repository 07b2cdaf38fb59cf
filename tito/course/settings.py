"""Read settings.ini, the course's single settings file."""

from __future__ import annotations

import configparser
import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

SETTINGS_FILE = "settings.ini"
GRADEBOOK_FILE = "gradebook.db"  # nbgrader's, under the grading state's root


# settings.ini as typed sections, read once per Course; each key means one thing.


@dataclass(frozen=True)
class GradingLimits:
    """The [grading] section: what grading allows a submission and the processes it runs in."""

    cell_timeout_seconds: int  # each cell, in the kernel run and in the judge
    memory_limit_mb: int  # each jail, all its processes together
    submission_timeout_seconds: int  # the whole job; also each jailed process's CPU time
    max_processes: int  # processes and threads in a jail at once
    scratch_mb: int  # a jail's only writable file system (its home and /tmp)
    max_output_mb: int  # the largest file a jailed process writes: bounds a job's executed notebook
    max_submission_mb: int = 64  # the largest submitted notebook grading, verify, similarity read
    max_archive_member_mb: int = 64  # the largest file `collect` takes from an archive


@dataclass(frozen=True)
class DisplayLimits:
    """The [display] section: what a page shows of a submission's outputs."""

    max_cells: int
    max_outputs_per_cell: int
    max_output_chars: int
    max_image_kb: int


@dataclass(frozen=True)
class StudentLimits:
    """The [student] section: `tito module complete`."""

    cell_timeout_seconds: int  # each cell it runs; well below the grader's


@dataclass(frozen=True)
class PackageSettings:
    """The [package] section: what the grader knows of the course's package."""

    jail_files: tuple[str, ...]  # the files a submission may import in the jail, from the root
    tensor_class: str  # "module:Class" whose objects cross the jail as data


# Keys an earlier settings.ini had, and what replaced them.
RENAMED = {
    ("grading", "output_mb"): "max_output_mb (what a job may write), max_submission_mb (a "
    "submitted notebook) and max_archive_member_mb (a file in a collected archive)",
}


MODULE_KEYS = {"title", "source", "notebook", "export", "depends", "mistakes", "examples"}


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
    examples: Path | None = None  # the example submissions it bundles (examples.py), absolute

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
        """The grader's time limit per cell ([grading] cell_timeout_seconds): the one key of
        [grading] the student edition's settings.ini holds (its messages name the limit)."""
        return self._ini.getint("grading", "cell_timeout_seconds")

    @property
    def student_cell_timeout(self) -> int:
        """The time limit of each cell `tito module complete` runs ([student])."""
        return self.student.cell_timeout_seconds

    def _section(self, name: str, cls, ignore: tuple[str, ...] = ()):
        """Section `name` as a `cls`: every key a field of it (integers where the field is), a
        key it does not know or a missing one refused, naming the file and the key."""
        where = self.root / SETTINGS_FILE
        section = self._ini[name] if self._ini.has_section(name) else {}
        for key in section:
            if (name, key) in RENAMED:
                raise CourseError(f"{where}: [{name}] {key} is now {RENAMED[(name, key)]}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - set(self._ini.defaults()) - set(fields) - set(ignore))
        if unknown:
            raise CourseError(f"{where}: [{name}] has unknown key(s) {', '.join(unknown)}")
        values = {}
        for key, f in fields.items():
            if key not in section:
                if f.default is dataclasses.MISSING:
                    raise CourseError(f"{where}: [{name}] {key} is missing")
                continue
            raw = section[key].strip()
            if f.type == "int":
                try:
                    values[key] = int(raw)
                except ValueError:
                    raise CourseError(
                        f"{where}: [{name}] {key} = {raw!r} is not a whole number"
                    ) from None
            elif f.type == "tuple[str, ...]":
                values[key] = tuple(raw.split())
            elif not raw:
                raise CourseError(f"{where}: [{name}] {key} is empty, which grading needs")
            else:
                values[key] = raw
        return cls(**values)

    @cached_property
    def grading(self) -> GradingLimits:
        return self._section("grading", GradingLimits, ignore=("scheduler",))

    @cached_property
    def display_limits(self) -> DisplayLimits:
        return self._section("display", DisplayLimits)

    @cached_property
    def student(self) -> StudentLimits:
        return self._section("student", StudentLimits)

    @cached_property
    def package(self) -> PackageSettings:
        return self._section("package", PackageSettings)

    @property
    def scheduler(self) -> str:
        """The Dask scheduler grading jobs go to ("" for this machine)."""
        return self._ini["grading"].get("scheduler", "").strip()

    @cached_property
    def modules(self) -> list[Module]:
        out = []
        for name in self._ini["course"]["modules"].split():
            sec = self._ini[f"module:{name}"]
            unknown = sorted(set(sec) - set(self._ini.defaults()) - MODULE_KEYS)
            if unknown:
                raise CourseError(
                    f"{self.root / SETTINGS_FILE}: [module:{name}] has unknown key(s) "
                    f"{', '.join(unknown)}"
                )
            out.append(
                Module(
                    name=name,
                    title=sec["title"],
                    source=self.root / sec["source"],
                    notebook=sec["notebook"],
                    export=self.root / sec["export"],
                    depends=tuple(sec.get("depends", "").split()),
                    mistakes=self.root / sec["mistakes"] if sec.get("mistakes") else None,
                    examples=self.root / sec["examples"] if sec.get("examples") else None,
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
