"""The bundled example submissions of 06_optimizers, derived from the student version.

alice: complete; bob: the untouched student version; carol: a realistic bug (epsilon inside
Adam's square root); dave: the same bug, with the locked test cell that catches it edited
to `pass` (nbgrader restores it, so the bug still costs the points).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from ..notebooks import dumps, write_if_changed
from ..settings import Course, CourseError
from . import submissions as sub

EXAMPLES_DIR = "examples/submissions"
MODULE = "06_optimizers"

EPS_INSIDE_SQRT = """\
state["step"] += 1
step = state["step"]
exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
g = grad + weight_decay * param
exp_avg *= beta1
exp_avg += (1 - beta1) * g
exp_avg_sq *= beta2
exp_avg_sq += (1 - beta2) * g * g
m_hat = exp_avg / (1 - beta1 ** step)
v_hat = exp_avg_sq / (1 - beta2 ** step)
param -= lr * m_hat / np.sqrt(v_hat + eps)
"""
BUG_REGION, BUG_TEST = "adam_step_impl", "adam_eps_outside_sqrt"


def build(
    release: nbformat.NotebookNode, instructor: nbformat.NotebookNode
) -> dict[str, nbformat.NotebookNode]:
    complete = sub.filled(release, instructor)
    buggy = sub.replace_region(complete, BUG_REGION, EPS_INSIDE_SQRT)
    return {
        "alice": complete,
        "bob": release,
        "carol": buggy,
        "dave": sub.set_source(
            buggy, BUG_TEST, '"""Adam adds eps outside the square root."""\npass  # trust me'
        ),
    }


def write(course: Course) -> list[Path]:
    m = course.module(MODULE)
    if not course.release_notebook(m).is_file():
        raise CourseError(
            f"no student version at {course.release_notebook(m)}: "
            f"run `tito nbgrader generate {m.name}`"
        )
    release = nbformat.read(course.release_notebook(m), as_version=4)
    instructor = nbformat.read(course.source_notebook(m), as_version=4)
    out = []
    for student, nb in build(release, instructor).items():
        path = course.root / EXAMPLES_DIR / f"{student}.ipynb"
        write_if_changed(path, dumps(nb))
        out.append(path)
    return out
