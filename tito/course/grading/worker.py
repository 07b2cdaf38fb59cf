"""`python -m tito.course.grading.worker REPO COURSE_ROOT MODULE STUDENT`: grade one submission."""
import sys
from pathlib import Path

from ..settings import Course
from .autograde import grade_one, save_outcome


def main(argv: list[str]) -> int:
    repo, course_root, module, student = argv
    course = Course(Path(repo))
    outcome = grade_one(course, Path(course_root), course.module(module), student)
    save_outcome(course, Path(course_root), outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
