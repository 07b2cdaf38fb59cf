"""settings.ini lookups and the CLI's answers to bad input (no kernels involved)."""

import configparser
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.conftest import make_course_copy
from tito.course.settings import Course, CourseError, GradingLimits, find_root
from tito.main import app

runner = CliRunner()


def test_modules_are_found_by_name_number_and_short_name():
    course = Course()
    assert [m.name for m in course.modules] == ["01_tensor", "06_optimizers"]
    for key in ["06_optimizers", "06", "6", "optimizers"]:
        assert course.module(key).name == "06_optimizers"
    assert course.module("06").export == course.root / "tinytorch" / "core" / "optimizers.py"
    assert course.module("06").depends == ("01_tensor",)


def test_unknown_module_error_lists_the_modules():
    with pytest.raises(
        CourseError, match=r"unknown module '99'; the modules are: 01_tensor, 06_optimizers"
    ):
        Course().module("99")


def test_cli_unknown_module_exits_1_and_lists_the_modules():
    result = runner.invoke(app, ["module", "start", "99"])
    assert result.exit_code == 1
    assert "unknown module '99'" in result.output
    assert "01_tensor, 06_optimizers" in result.output


def test_outside_the_repository_the_error_names_the_expected_root(tmp_path, monkeypatch):
    with pytest.raises(CourseError, match="no settings.ini beside a modules/ folder"):
        find_root(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["module", "list"])
    assert result.exit_code == 1
    assert "not inside the course repository" in result.output


def test_grading_limits_come_from_settings_ini():
    course = Course()
    assert course.grading == GradingLimits(
        cell_timeout_seconds=60,
        memory_limit_mb=3072,
        submission_timeout_seconds=900,
        max_processes=256,
        scratch_mb=512,
        max_output_mb=64,
        max_submission_mb=64,
        max_archive_member_mb=64,
    )
    assert course.cell_timeout == 60 and course.student_cell_timeout == 10


@pytest.mark.parametrize(
    "section, key, value, said",
    [
        ("grading", "output_mb", "64", "[grading] output_mb is now max_output_mb"),
        ("grading", "memory_limit", "64", "[grading] has unknown key(s) memory_limit"),
        ("grading", "scratch_mb", "lots", "[grading] scratch_mb = 'lots' is not a whole number"),
        ("display", "max_cells", None, "[display] max_cells is missing"),
        ("package", "tensor_class", "", "[package] tensor_class is empty, which grading needs"),
        (
            "module:06_optimizers",
            "example",
            "x.yaml",
            "[module:06_optimizers] has unknown key(s) example",
        ),
    ],
)
def test_a_wrong_setting_is_named_with_its_section_and_key(tmp_path, section, key, value, said):
    root = make_course_copy(tmp_path / "course")
    ini = configparser.ConfigParser()
    ini.read(root / "settings.ini", encoding="utf-8")
    if value is None:
        del ini[section][key]
    else:
        ini[section][key] = value
    with open(root / "settings.ini", "w", encoding="utf-8") as f:
        ini.write(f)
    read = {
        "grading": "grading",
        "display": "display_limits",
        "package": "package",
        "module:06_optimizers": "modules",
    }[section]
    with pytest.raises(CourseError, match=re.escape(said)):
        getattr(Course(root), read)


def test_nbgrader_config_reads_the_same_settings(tmp_path):
    from tito.course.nbgrader_setup import nbgrader_config

    c = nbgrader_config(Course(), tmp_path)
    assert c.CourseDirectory.course_id == "tinytorch-optimizers"
    assert c.CourseDirectory.source_directory == "assignments"
    assert c.CourseDirectory.release_directory == "release"
    assert c.Execute.timeout == 60
    assert c.OverwriteCells.add_missing_cells is True
    assert c.CourseDirectory.db_url == f"sqlite:///{tmp_path.resolve() / 'gradebook.db'}"


def test_every_grading_path_is_made_by_the_course_in_nbgraders_layout(tmp_path):
    from tito.course.nbgrader_setup import nbgrader_config

    course, root = Course(), tmp_path.resolve()
    m, c = course.module("06"), nbgrader_config(course, tmp_path).CourseDirectory
    notebook = f"{m.notebook}.ipynb"
    assert (
        course.submission_notebook(m, "ada", tmp_path)
        == root / c.submitted_directory / "ada" / m.name / notebook
    )
    assert (
        course.student_folder("autograded", m, "ada", tmp_path)
        == root / c.autograded_directory / "ada" / m.name
    )
    assert (
        course.student_folder("feedback", m, "ada", tmp_path)
        == root / c.feedback_directory / "ada" / m.name
    )
    assert course.source_notebook(m, tmp_path) == root / c.source_directory / m.name / notebook
    assert course.source_notebook(m) == course.directory("source") / m.name / notebook
    assert c.db_url == f"sqlite:///{course.gradebook(tmp_path)}"
    (root / "submitted" / "ada" / m.name).mkdir(parents=True)
    (root / "submitted" / "bob" / "01_tensor").mkdir(parents=True)
    assert course.students("submitted", m, tmp_path) == ["ada"]
    # Nothing else spells the layout out: nbgrader's folder traits and the gradebook's file
    # name appear only where the course hands them to nbgrader.
    spelled = [
        str(p.relative_to(course.root))
        for p in (course.root / "tito").rglob("*.py")
        if p.name not in ("settings.py", "nbgrader_setup.py")
        and any(
            word in p.read_text(encoding="utf-8")
            for word in ("_directory", "gradebook.db", "CourseDirectory")
        )
    ]
    assert spelled == []


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["module", "--help"],
        ["nbgrader", "autograde", "--help"],
        ["system", "doctor", "--help"],
        ["test", "--help"],
        ["export", "--help"],
        ["experiment", "--help"],
    ],
)
def test_every_command_group_has_help(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_the_command_starts_without_the_graders_libraries():
    """nbgrader, nbconvert and jupyter_server take seconds to import: only the grading commands
    that use them load them, so `tito export`, `tito test` or `tito module ...` in the
    instructor's checkout starts without them."""
    heavy = ["jupyter_server", "nbconvert", "nbgrader", "sqlalchemy"]
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, tito.main; print([m for m in {heavy!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert started.stdout.strip() == "[]", started.stdout


@pytest.mark.slow
def test_tito_test_checks_what_the_grader_checks_and_leaves_out_the_allocation_tests():
    """The allocation-free property of the reference kernels is not graded, so a student's `tito
    test` skips it."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Course().root
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-m",
            "instructor",
            "tests/06_optimizers",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    (instructor_only,) = re.findall(r"(\d+)/\d+ tests collected", collected.stdout)
    assert int(instructor_only) > 0
    assert {line.split("::")[0] for line in collected.stdout.splitlines() if "::" in line} == {
        "tests/06_optimizers/test_optimizers_allocations.py"
    }
    # What `tito test` selects, collected only: the suite itself runs these tests already.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "tito"), "test", "06"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTEST_ADDOPTS": "--collect-only"},
    )
    assert result.returncode == 0, result.stdout[-2000:]
    selected = {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}
    assert "tests/06_optimizers/test_optimizers_allocations.py" not in selected
    assert "tests/06_optimizers/test_optimizers_unit.py" in selected
    assert f"({instructor_only} deselected)" in result.stdout
