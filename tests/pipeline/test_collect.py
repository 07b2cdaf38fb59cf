"""Importing submissions from an LMS download: layouts, bad entries, no overwrite without
--force."""

import io
import os
import re
import socket
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_course_copy
from tito.commands import common
from tito.course.grading.collect import collect
from tito.course.settings import Course, CourseError
from tito.main import app


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_collect_accepts_both_layouts_and_reports_the_rest(tmp_path):
    course = Course()
    m = course.module("06")
    archive = _zip(
        tmp_path / "lms.zip",
        {
            "alice.ipynb": b"{}",
            "bob/whatever.ipynb": b"not json",
            "readme.txt": b"x",
            "deep/a/b.ipynb": b"{}",
            "../evil.ipynb": b"{}",
            "alice/again.ipynb": b"{}",
        },
    )
    root = tmp_path / "course"
    imported, skipped = collect(course, m, archive, course_root=root)
    assert imported == ["alice", "bob"]
    assert (root / "submitted/alice/06_optimizers/optimizers.ipynb").read_bytes() == b"{}"
    # A broken notebook is imported byte for byte; grading records why it scores 0.
    assert (root / "submitted/bob/06_optimizers/optimizers.ipynb").read_bytes() == b"not json"
    assert sorted(s.split(":")[0] for s in skipped) == [
        "../evil.ipynb",
        "alice/again.ipynb",
        "deep/a/b.ipynb",
        "readme.txt",
    ]
    assert not (tmp_path / "evil.ipynb").exists()


def test_collect_never_overwrites_a_submission_without_force(tmp_path):
    course = Course()
    m = course.module("06")
    root = tmp_path / "course"
    collect(course, m, _zip(tmp_path / "one.zip", {"alice.ipynb": b"first"}), course_root=root)
    imported, skipped = collect(
        course, m, _zip(tmp_path / "two.zip", {"alice.ipynb": b"second"}), course_root=root
    )
    dest = root / "submitted/alice/06_optimizers/optimizers.ipynb"
    assert (imported, dest.read_bytes()) == ([], b"first")
    assert "already has a submission" in skipped[0]
    imported, _ = collect(course, m, tmp_path / "two.zip", force=True, course_root=root)
    assert (imported, dest.read_bytes()) == (["alice"], b"second")


def test_collect_rejects_a_file_that_is_not_an_archive(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"nope")
    with pytest.raises(CourseError, match="cannot read .* as a zip or tar archive or a folder"):
        collect(Course(), Course().module("06"), bad, course_root=tmp_path)


@pytest.mark.parametrize("layout", ["zip", "folder"])
def test_collect_refuses_a_notebook_over_the_size_limit_without_reading_it_whole(tmp_path, layout):
    course = Course(make_course_copy(tmp_path / "small", max_archive_member_mb=1))
    m = course.module("06")
    limit = 1 << 20
    members = {"alice.ipynb": b"{}", "huge.ipynb": b" " * (limit + 1)}
    if layout == "zip":
        archive = _zip(tmp_path / "lms.zip", members)
    else:
        archive = tmp_path / "download"
        archive.mkdir()
        for name, data in members.items():
            (archive / name).write_bytes(data)
    imported, skipped = collect(course, m, archive, course_root=tmp_path / "course")
    assert imported == ["alice"]
    assert skipped == [
        f"huge.ipynb: larger than {limit >> 20} MB (max_archive_member_mb in settings.ini)"
    ]
    assert not (tmp_path / "course/submitted/huge").exists()


# What an LMS download may hold besides notebooks: the entries collect must name and skip
# without opening (a named pipe would block the read until a writer came, which never does).
LIMIT = 1 << 20
NAMED = {
    "huge.ipynb": "larger than 1 MB (max_archive_member_mb in settings.ini)",
    "linked.ipynb": "not a regular file: a symbolic link",
    "piped.ipynb": "not a regular file: a named pipe",
    "plugged.ipynb": "not a regular file: a socket",
}


def _download_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "alice.ipynb").write_bytes(b"{}")
    (folder / "bob").mkdir()
    (folder / "bob" / "hw.ipynb").write_bytes(b"{ }")
    (folder / "huge.ipynb").write_bytes(b" " * (LIMIT + 1))
    (folder / "linked.ipynb").symlink_to(folder / "alice.ipynb")
    os.mkfifo(folder / "piped.ipynb")
    with socket.socket(socket.AF_UNIX) as s:  # the socket file stays after the socket closes
        s.bind(str(folder / "plugged.ipynb"))
    return folder


def _tar(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in {
            "alice.ipynb": b"{}",
            "bob/hw.ipynb": b"{ }",
            "huge.ipynb": b" " * (LIMIT + 1),
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, kind in {
            "linked.ipynb": tarfile.SYMTYPE,
            "piped.ipynb": tarfile.FIFOTYPE,
            "tty.ipynb": tarfile.CHRTYPE,
            "disk.ipynb": tarfile.BLKTYPE,
            "again.ipynb": tarfile.LNKTYPE,
        }.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "alice.ipynb"
            tf.addfile(info)
    return path


def _zip_with_modes(path: Path) -> Path:
    """A zip whose entries carry Unix modes (as Info-ZIP stores them): a link and a pipe."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("alice.ipynb", b"{}")
        z.writestr("bob/hw.ipynb", b"{ }")
        z.writestr("huge.ipynb", b" " * (LIMIT + 1))
        for name, mode in {
            "linked.ipynb": stat.S_IFLNK | 0o777,
            "piped.ipynb": stat.S_IFIFO | 0o644,
        }.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, b"alice.ipynb")
    return path


@pytest.fixture(scope="module")
def course_root(tmp_path_factory):
    return make_course_copy(tmp_path_factory.mktemp("collect") / "course", max_archive_member_mb=1)


@pytest.mark.parametrize("layout", ["folder", "tar", "zip"])
def test_collect_names_every_entry_that_is_not_a_regular_file_and_never_blocks(
    tmp_path, course_root, layout
):
    root = course_root
    archive = {
        "folder": lambda: _download_folder(tmp_path / "download"),
        "tar": lambda: _tar(tmp_path / "lms.tar.gz"),
        "zip": lambda: _zip_with_modes(tmp_path / "lms.zip"),
    }[layout]()
    tito = Path(sys.executable).parent / "tito"
    # A blocked read would hang here: the timeout turns that into a failure.
    proc = subprocess.run(
        [str(tito), "nbgrader", "collect", "06", str(archive), "--force"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    expected = dict(NAMED)
    if layout == "tar":
        del expected[
            "plugged.ipynb"
        ]  # a tar cannot hold a socket; it can hold devices and hard links
        expected.update(
            {
                "tty.ipynb": "not a regular file: a character device",
                "disk.ipynb": "not a regular file: a block device",
                "again.ipynb": "not a regular file: a hard link",
            }
        )
    if layout == "zip":
        del expected["plugged.ipynb"]
    skipped = sorted(
        line.removeprefix("skipped ")
        for line in proc.stdout.splitlines()
        if line.startswith("skipped")
    )
    assert skipped == sorted(f"{name}: {reason}" for name, reason in expected.items()), proc.stdout
    assert proc.returncode == 3, proc.stdout + proc.stderr  # some entries skipped
    assert (
        f"2 submission(s) collected into submitted/, {len(expected)} entries skipped" in proc.stdout
    )
    submitted = root / "submitted"
    assert sorted(
        p.relative_to(submitted).as_posix()
        for p in submitted.rglob("*.ipynb")
        if p.parts[len(submitted.parts)] in ("alice", "bob", "huge", "linked", "piped", "plugged")
    ) == ["alice/06_optimizers/optimizers.ipynb", "bob/06_optimizers/optimizers.ipynb"]
    assert (submitted / "bob/06_optimizers/optimizers.ipynb").read_bytes() == b"{ }"


def test_collect_exits_0_when_all_is_collected_and_1_with_a_reason_when_nothing_is(
    tmp_path, course_root, monkeypatch
):
    root = course_root
    archive = _zip(tmp_path / "lms.zip", {"carol.ipynb": b"{}"})
    monkeypatch.chdir(root)
    monkeypatch.setattr(common.console, "_width", 200)  # whatever COLUMNS said at import
    runner, collect = CliRunner(), ["nbgrader", "collect", "06", str(archive)]
    first = runner.invoke(app, collect)
    assert (first.exit_code, first.stdout.splitlines()[-1]) == (
        0,
        "1 submission(s) collected into submitted/",
    )
    again = runner.invoke(app, collect)
    assert again.exit_code == 1
    assert (
        "skipped carol.ipynb: carol already has a submission (use --force to replace it)"
        in again.stdout
    )
    assert (
        f"error: nothing collected from {archive} into submitted/: 1 entries skipped (above)"
        in again.stderr
    )
    fifo = tmp_path / "download.zip"
    os.mkfifo(fifo)
    # A command of its own, with a time limit: a read that blocked would hang this test.
    tito = [str(Path(sys.executable).parent / "tito"), *collect[:-1], str(fifo)]
    piped = subprocess.run(
        tito,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert (piped.returncode, piped.stderr.strip()) == (
        1,
        f"error: cannot read {fifo}: not a regular file: a named pipe",
    )


@pytest.mark.parametrize(
    "command, says",
    [
        ("feedback", r"no feedback was written for 06_optimizers: autograde the submissions first"),
        (
            "report",
            r"no instructor notebook at \S+: run `tito nbgrader generate 06_optimizers` first",
        ),
        (
            "analytics",
            r"no instructor notebook at \S+: run `tito nbgrader generate 06_optimizers` first",
        ),
    ],
)
def test_a_command_that_needs_grades_before_autograde_says_what_to_run_first(
    course_root, command, says, monkeypatch
):
    """In a course copy nothing was generated or graded in: a one-line error, no traceback, exit
    1."""
    monkeypatch.chdir(course_root)
    result = CliRunner().invoke(app, ["nbgrader", command, "06"])
    assert (result.exit_code, result.stdout) == (1, ""), result.stderr
    assert re.fullmatch(f"error: {says}", result.stderr.strip()), result.stderr
