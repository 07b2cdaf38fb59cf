"""nbgrader configuration built from settings.ini, and thin wrappers over nbgrader's API."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

from traitlets.config import Config

from .settings import Course, CourseError

STUDENT_CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def nbgrader_config(course: Course, course_root: Path | None = None) -> Config:
    """The nbgrader configuration for this course.

    `course_root` holds the per-machine folders (submitted/, autograded/, feedback/,
    gradebook.db); it defaults to the repository, and tests point it at a temporary folder.
    """
    root = Path(course_root or course.root).resolve()
    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = course.course_id
    for trait, key in [
        ("source_directory", "source"),
        ("release_directory", "release"),
        ("submitted_directory", "submitted"),
        ("autograded_directory", "autograded"),
        ("feedback_directory", "feedback"),
    ]:
        setattr(c.CourseDirectory, trait, course.directory(key).name)
    c.CourseDirectory.db_url = gradebook_url(course, root)
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__"]
    c.ClearSolutions.code_stub = {"python": STUDENT_CODE_STUB}
    c.Execute.timeout = course.cell_timeout
    c.Execute.interrupt_on_timeout = True
    # A deleted grade cell is put back from the gradebook, so it is graded (and fails)
    # instead of silently vanishing from the score.
    c.OverwriteCells.add_missing_cells = True
    # nbgrader: a second to import, paid only by the commands that use it
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteCells,
        OverwriteKernelspec,
    )

    # (these import nbgrader too)
    from .preprocessors import DropDuplicateGradeCells, OnlyInTheJail

    c.Autograde.sanitize_preprocessors = [
        ClearOutput,
        DropDuplicateGradeCells,
        DeduplicateIds,
        OverwriteKernelspec,
        OverwriteCells,
        CheckCellMetadata,
    ]
    # nbgrader's own autograde refuses; tito's host runs the sanitizing steps above itself.
    c.Autograde.exporter_class = OnlyInTheJail
    c.ExecutePreprocessor.kernel_name = "python3"
    c.Execute.kernel_name = "python3"
    return c


def gradebook_url(course: Course, course_root: Path | None = None) -> str:
    return f"sqlite:///{course.gradebook(course_root)}"


def gradebook(course: Course, course_root: Path | None = None):
    """The course's nbgrader Gradebook (a context manager that commits nothing by itself)."""
    # nbgrader: a second to import, paid only by the commands that use it
    from nbgrader.api import Gradebook

    stamp_in_process()
    return Gradebook(gradebook_url(course, course_root), course.course_id)


def alembic_head() -> str:
    """The revision of nbgrader's gradebook schema, read by alembic's API from nbgrader's
    migration scripts: what `alembic heads` prints for them."""
    # nbgrader and alembic: a second to import, paid only when a gradebook is made
    import nbgrader
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    config = AlembicConfig()
    config.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
    return ScriptDirectory.from_config(config).get_current_head()


def stamp_in_process() -> None:
    """nbgrader stamps a new gradebook with its schema's revision, which it reads by running the
    `alembic` command: a Python process of its own, about 4 s on a 2-core machine. The same
    revision is read here, in this process (nbgrader.api.get_alembic_version is what it calls)."""
    import nbgrader.api  # a second to import, paid only by the commands that use nbgrader

    nbgrader.api.get_alembic_version = alembic_head


def api(course: Course, course_root: Path | None = None, config: Config | None = None):
    # nbgrader: a second to import, paid only by the commands that use it
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    stamp_in_process()
    config = config or nbgrader_config(course, course_root)
    coursedir = CourseDirectory(config=config)
    a = NbGraderAPI(coursedir, config=config)
    a.log.setLevel(logging.WARNING)
    return a


def check(result: dict, what: str) -> dict:
    """nbgrader's API returns a success flag instead of raising: turn failure into an error."""
    if not result.get("success"):
        # nbgrader's error often only says "see the traceback above": the log holds it.
        detail = "\n".join(
            x.strip() for x in (result.get("log"), result.get("error")) if x and x.strip()
        )
        raise CourseError(f"nbgrader {what} failed:\n{detail[-3000:]}")
    return result


@contextlib.contextmanager
def quiet():
    """nbgrader logs chatty INFO lines to stderr; keep the CLI output to what tito prints."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield
