"""Import submissions (one notebook per student, in a zip or tar archive or a folder) into
submitted/."""

from __future__ import annotations

import functools
import os
import re
import stat
import tarfile
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from ..notebooks import write_if_changed
from ..settings import Course, CourseError, Module
from .files import Refused, kind_refusal, read_regular, too_large

MEMBER_LIMIT = "max_archive_member_mb"  # the setting that bounds a file taken from an archive

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@contextmanager
def _members(archive: Path, limit: int):
    """(relative posix name, reader) for each entry of a zip or tar archive or a folder.

    A reader returns the entry's bytes, or raises Refused with the reason: anything but a
    regular file (a symbolic link could point at any file of the grading machine, a named pipe
    would block the read) and anything over `limit` bytes, refused before it is read whole.
    """
    try:
        mode = os.stat(archive).st_mode
    except OSError as e:
        raise CourseError(f"cannot read {archive}: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        yield _folder_members(archive, limit)
    elif not stat.S_ISREG(mode):
        raise CourseError(f"cannot read {archive}: {kind_refusal(mode)}")
    elif zipfile.is_zipfile(archive):
        with _opened(archive, zipfile.ZipFile) as zf:
            yield [
                (i.filename.replace("\\", "/"), functools.partial(_read_zip_member, zf, i, limit))
                for i in zf.infolist()
                if not i.is_dir()
            ]
    else:
        with _opened(archive, tarfile.open) as tf:
            yield [
                (t.name, functools.partial(_read_tar_member, tf, t, limit))
                for t in tf
                if not t.isdir()
            ]


@contextmanager
def _opened(archive: Path, opener):
    try:
        handle = opener(archive)
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as e:
        raise CourseError(
            f"cannot read {archive} as a zip or tar archive or a folder: {e}"
        ) from None
    with handle:
        yield handle


def _folder_members(folder: Path, limit: int) -> list:
    out = []
    for parent, dirs, files in os.walk(folder):  # does not descend into linked folders
        for name in files + [d for d in dirs if Path(parent, d).is_symlink()]:
            f = Path(parent, name)
            out.append(
                (
                    f.relative_to(folder).as_posix(),
                    functools.partial(read_regular, f, limit, MEMBER_LIMIT),
                )
            )
    return sorted(out, key=lambda item: item[0])


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    mode = (
        info.external_attr >> 16
    )  # a Unix mode where the archiver stored one; its type bits may be 0
    if stat.S_IFMT(mode) and (reason := kind_refusal(mode)):
        raise Refused(reason)
    if info.file_size > limit:
        raise too_large(limit, MEMBER_LIMIT)
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)  # the header's size may lie; the stream is cut here
    except (
        OSError,
        zipfile.BadZipFile,
        RuntimeError,
        NotImplementedError,
    ) as e:  # encrypted, unknown method
        raise Refused(f"cannot be read from the archive: {e}") from None
    if len(data) > limit:
        raise too_large(limit, MEMBER_LIMIT)
    return data


_TAR_KINDS = {
    tarfile.SYMTYPE: stat.S_IFLNK,
    tarfile.FIFOTYPE: stat.S_IFIFO,
    tarfile.CHRTYPE: stat.S_IFCHR,
    tarfile.BLKTYPE: stat.S_IFBLK,
}


def _read_tar_member(tf: tarfile.TarFile, info: tarfile.TarInfo, limit: int) -> bytes:
    if info.islnk():
        raise Refused("not a regular file: a hard link")
    if not info.isreg():
        raise Refused(kind_refusal(_TAR_KINDS.get(info.type, 0)))
    if info.size > limit:
        raise too_large(limit, MEMBER_LIMIT)
    try:
        with tf.extractfile(info) as fh:
            data = fh.read(limit + 1)
    except (OSError, tarfile.TarError) as e:
        raise Refused(f"cannot be read from the archive: {e}") from None
    if len(data) > limit:
        raise too_large(limit, MEMBER_LIMIT)
    return data


def collect(
    course: Course, m: Module, archive: Path, force: bool = False, course_root: Path | None = None
) -> tuple[list[str], list[str]]:
    """Accepted layouts per member: `STUDENT.ipynb` or `STUDENT/<anything>.ipynb`.

    Returns (imported student ids, skipped members with the reason). An existing
    submission is kept unless `force`.
    """
    root = course.state_root(course_root)
    imported, skipped, seen = [], [], set()
    with _members(Path(archive), course.grading.max_archive_member_mb << 20) as members:
        for name, read in members:
            student, reason = _student_of(PurePosixPath(name), seen)
            dest = course.submission_notebook(m, student or ".", root)
            if student and dest.exists() and not force:
                reason = f"{student} already has a submission (use --force to replace it)"
            if reason is None:
                try:
                    data = read()
                except Refused as e:
                    reason = str(e)
            if reason is not None:
                skipped.append(f"{name}: {reason}")
                continue
            write_if_changed(dest, data)
            imported.append(student)
    return imported, skipped


def _student_of(p: PurePosixPath, seen: set) -> tuple[str | None, str | None]:
    """(the student a member belongs to, None) or (None, why it is not a submission)."""
    if p.suffix != ".ipynb" or p.name.startswith(".") or "__MACOSX" in p.parts:
        return None, "not a notebook"
    student = p.stem if len(p.parts) == 1 else p.parts[0] if len(p.parts) == 2 else None
    if student is None or not STUDENT_ID.fullmatch(student):
        return None, "expected STUDENT.ipynb or STUDENT/notebook.ipynb"
    if student in seen:
        return None, f"a second notebook for {student}"
    seen.add(student)
    return student, None
