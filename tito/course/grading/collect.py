"""Import submissions (one notebook per student, in a zip or a folder) into the submitted folder."""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path, PurePosixPath

from ..nbgrader_setup import nbgrader_config
from ..notebooks import write_if_changed
from ..settings import Course, CourseError, Module

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _members(archive: Path, limit: int):
    """(relative posix name, reader) for each file of a zip archive or a folder.

    A reader returns the file's bytes, and refuses a file over `limit` bytes (before reading
    it whole) and, in a folder, a symbolic link: it could point at any file of the grading
    machine (an instructor notebook, say).
    """
    if archive.is_dir():
        out = []
        for folder, dirs, files in os.walk(archive):  # does not descend into linked folders
            for name in sorted(files) + sorted(d for d in dirs if Path(folder, d).is_symlink()):
                f = Path(folder, name)
                out.append((f.relative_to(archive).as_posix(), lambda f=f: _read_file(f, limit)))
        return sorted(out, key=lambda item: item[0])
    try:
        with zipfile.ZipFile(archive) as zf:
            return [(i.filename.replace("\\", "/"), lambda i=i: _read_member(archive, i, limit))
                    for i in zf.infolist() if not i.is_dir()]
    except (OSError, zipfile.BadZipFile) as e:
        raise CourseError(f"cannot read {archive} as a zip archive or folder: {e}") from None


def _too_large(limit: int) -> CourseError:
    return CourseError(f"larger than {limit >> 20} MB (output_mb in settings.ini)")


def _read_file(f: Path, limit: int) -> bytes:
    if f.is_symlink():
        raise CourseError("a symbolic link, not a file")
    with open(f, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise _too_large(limit)
    return data


def _read_member(archive: Path, info: zipfile.ZipInfo, limit: int) -> bytes:
    if info.file_size > limit:
        raise _too_large(limit)
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(info) as fh:
            data = fh.read(limit + 1)  # the header's size may lie; the stream is cut here
    except (OSError, zipfile.BadZipFile, RuntimeError) as e:  # RuntimeError: an encrypted member
        raise CourseError(f"cannot be read from the archive: {e}") from None
    if len(data) > limit:
        raise _too_large(limit)
    return data


def collect(course: Course, m: Module, archive: Path, force: bool = False,
            course_root: Path | None = None) -> tuple[list[str], list[str]]:
    """Accepted layouts per member: `STUDENT.ipynb` or `STUDENT/<anything>.ipynb`.

    Returns (imported student ids, skipped members with the reason). An existing
    submission is kept unless `force`.
    """
    root = Path(course_root or course.root).resolve()
    cfg = nbgrader_config(course, root).CourseDirectory
    imported, skipped, seen = [], [], set()
    for name, read in _members(Path(archive), course.grading_limits["output_mb"] << 20):
        p = PurePosixPath(name)
        if p.suffix != ".ipynb" or p.name.startswith(".") or "__MACOSX" in p.parts:
            skipped.append(f"{name}: not a notebook")
            continue
        student = p.stem if len(p.parts) == 1 else p.parts[0] if len(p.parts) == 2 else None
        if student is None or not STUDENT_ID.match(student):
            skipped.append(f"{name}: expected STUDENT.ipynb or STUDENT/notebook.ipynb")
            continue
        if student in seen:
            skipped.append(f"{name}: a second notebook for {student}")
            continue
        seen.add(student)
        dest = root / cfg.submitted_directory / student / m.name / f"{m.notebook}.ipynb"
        if dest.exists() and not force:
            skipped.append(f"{name}: {student} already has a submission (use --force to replace it)")
            continue
        try:
            data = read()
        except CourseError as e:
            skipped.append(f"{name}: {e}")
            continue
        write_if_changed(dest, data)
        imported.append(student)
    return imported, skipped
