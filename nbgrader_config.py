"""nbgrader's configuration for this course, built from settings.ini.

`nbgrader <command>` run in this folder reads this file; `tito nbgrader ...` builds the
same configuration directly. Every value comes from settings.ini (see
tito/course/nbgrader_setup.py), so nothing is written twice.
"""

from pathlib import Path

from tito.course.nbgrader_setup import nbgrader_config
from tito.course.settings import Course

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)
c.merge(nbgrader_config(Course(Path(__file__).resolve().parent)))
