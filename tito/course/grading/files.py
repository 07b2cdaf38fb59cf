"""Reading a file that a student or an archive provided: only a regular file, never through a
symbolic link, never more than a size limit.

Opening a named pipe for reading waits for a writer, a socket cannot be opened at all, and a
device may do anything when opened; so the kind of an entry is checked from its metadata
(`lstat`, a tar header, a zip entry's mode bits) before anything is opened, and again on the
opened descriptor (the entry may have been replaced in between).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class Refused(OSError):
    """The entry is not read; its text is the reason, for the instructor or the outcome."""


def kind_refusal(mode: int) -> str | None:
    """None for a regular file; otherwise why it is not read ("not a regular file: a named
    pipe")."""
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file: {KINDS.get(stat.S_IFMT(mode), 'an unknown kind of entry')}"


def too_large(limit: int, setting: str) -> Refused:
    return Refused(
        f"larger than {limit >> 20} MB" + (f" ({setting} in settings.ini)" if setting else "")
    )


def read_regular(path: Path, limit: int, setting: str = "max_submission_mb") -> bytes:
    """The bytes of the regular file at `path` (its last step not a link), at most `limit` bytes
    (the `setting` of settings.ini that sets it, if any, named when a file is larger).

    Raises Refused with the reason for anything else, FileNotFoundError when there is nothing.
    """
    before = os.lstat(path)
    if (reason := kind_refusal(before.st_mode)) is not None:
        raise Refused(reason)
    if before.st_size > limit:
        raise too_large(limit, setting)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:  # replaced by a link or a socket since lstat
        raise Refused(f"cannot be opened: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino) or kind_refusal(now.st_mode):
            raise Refused("replaced while it was being read")
        data = f.read(limit + 1)  # the size may have grown since
    if len(data) > limit:
        raise too_large(limit, setting)
    return data
