"""Importing submissions from an LMS download: layouts, bad entries, no overwrite without --force."""
import zipfile

import pytest

from tito.course.grading.collect import collect
from tito.course.settings import Course, CourseError


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_collect_accepts_both_layouts_and_reports_the_rest(tmp_path):
    course = Course()
    m = course.module("06")
    archive = _zip(tmp_path / "lms.zip", {
        "alice.ipynb": b"{}", "bob/whatever.ipynb": b"not json", "readme.txt": b"x",
        "deep/a/b.ipynb": b"{}", "../evil.ipynb": b"{}", "alice/again.ipynb": b"{}",
    })
    root = tmp_path / "course"
    imported, skipped = collect(course, m, archive, course_root=root)
    assert imported == ["alice", "bob"]
    assert (root / "submitted/alice/06_optimizers/optimizers.ipynb").read_bytes() == b"{}"
    # A broken notebook is imported byte for byte; grading records why it scores 0.
    assert (root / "submitted/bob/06_optimizers/optimizers.ipynb").read_bytes() == b"not json"
    assert sorted(s.split(":")[0] for s in skipped) == ["../evil.ipynb", "alice/again.ipynb", "deep/a/b.ipynb",
                                                        "readme.txt"]
    assert not (tmp_path / "evil.ipynb").exists()


def test_collect_never_overwrites_a_submission_without_force(tmp_path):
    course = Course()
    m = course.module("06")
    root = tmp_path / "course"
    collect(course, m, _zip(tmp_path / "one.zip", {"alice.ipynb": b"first"}), course_root=root)
    imported, skipped = collect(course, m, _zip(tmp_path / "two.zip", {"alice.ipynb": b"second"}), course_root=root)
    dest = root / "submitted/alice/06_optimizers/optimizers.ipynb"
    assert (imported, dest.read_bytes()) == ([], b"first")
    assert "already has a submission" in skipped[0]
    imported, _ = collect(course, m, tmp_path / "two.zip", force=True, course_root=root)
    assert (imported, dest.read_bytes()) == (["alice"], b"second")


def test_collect_rejects_a_file_that_is_not_an_archive(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"nope")
    with pytest.raises(CourseError, match="cannot read .* as a zip archive or folder"):
        collect(Course(), Course().module("06"), bad, course_root=tmp_path)


@pytest.mark.parametrize("layout", ["zip", "folder"])
def test_collect_refuses_a_notebook_over_the_size_limit_without_reading_it_whole(tmp_path, monkeypatch, layout):
    limits = {**Course().grading_limits, "output_mb": 1}
    monkeypatch.setattr(Course, "grading_limits", property(lambda self: limits))
    course = Course()
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
    assert skipped == [f"huge.ipynb: larger than {limit >> 20} MB (output_mb in settings.ini)"]
    assert not (tmp_path / "course/submitted/huge").exists()
