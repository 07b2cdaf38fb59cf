"""The host's handling of what a job returns: only outputs cross, as plain data."""

from __future__ import annotations

import json

import nbformat

from tito.course.grading.display import DisplayLimits
from tito.course.grading.host import _kernel_score
from tito.course.grading.host import merge_outputs as merge

LIMITS = DisplayLimits(max_cells=100, max_outputs_per_cell=3, max_output_chars=40, max_image_kb=1)


def merge_outputs(shown, executed):
    return merge(shown, executed, LIMITS)


def _prepared():
    cell = nbformat.v4.new_code_cell("print('hi')")
    cell.id = "a"
    graded = nbformat.v4.new_code_cell("assert True")
    graded.id = "t"
    graded.metadata["nbgrader"] = {
        "grade": True,
        "solution": False,
        "locked": True,
        "points": 2,
        "grade_id": "t",
        "schema_version": 3,
    }
    return nbformat.v4.new_notebook(cells=[cell, graded])


def _returned(nb, **change) -> str:
    d = json.loads(nbformat.writes(nb))
    d["cells"][0]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": ["forged\n", "as a list\n"]},
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {
                "text/plain": "shown",
                "text/html": "<script>alert(1)</script>",
                "application/javascript": "x()",
            },
        },
    ]
    d["cells"][0]["execution_count"] = 1
    d["cells"][0].update(change)
    return json.dumps({"error": "", "notebook": d})


def test_outputs_are_copied_as_plain_data_and_text_lists_are_joined():
    nb, note = merge_outputs(_prepared(), _returned(_prepared()))
    assert note == ""
    stream, display = nb.cells[0].outputs
    assert stream.text == "forged\nas a list\n"
    assert dict(display.data) == {"text/plain": "shown"}  # no HTML or JavaScript reaches a browser
    assert nb.cells[0].source == "print('hi')"


def test_a_returned_notebook_with_other_cells_gives_no_outputs():
    nb, note = merge_outputs(_prepared(), _returned(_prepared(), id="moved"))
    assert note == "the kernel run returned a notebook with other cells; its outputs were not used"
    assert [c.outputs for c in nb.cells] == [[], []]


def test_garbage_from_the_kernel_run_is_a_note_not_a_crash():
    nb, note = merge_outputs(_prepared(), '{"notebook": [1, 2')
    assert note == "the kernel run returned no readable notebook"


def test_a_graded_cell_that_never_ran_scores_nothing_in_the_kernel_verdict():
    nb, _ = merge_outputs(_prepared(), _returned(_prepared()))
    assert _kernel_score(nb.cells[1]) == 0.0  # no execution_count: it never ran
    nb.cells[1].execution_count = 2
    assert _kernel_score(nb.cells[1]) == 2.0


def test_a_lone_surrogate_from_the_kernel_run_becomes_a_replacement_character():
    nb = _prepared()
    d = json.loads(nbformat.writes(nb))
    d["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "a\ud800b"}]
    merged, note = merge_outputs(nb, json.dumps({"error": "\udcff", "notebook": d}))
    assert merged.cells[0].outputs[0].text == "a\ufffdb"
    assert note == "the kernel stopped: \ufffd"
    nbformat.writes(merged).encode("utf-8")  # what record writes: valid UTF-8


def test_150000_outputs_are_cut_to_the_cap_before_any_schema_check():
    nb = _prepared()
    d = json.loads(nbformat.writes(nb))
    d["cells"][0]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": f"{i}\n"} for i in range(150_000)
    ]
    merged, note = merge_outputs(nb, json.dumps({"error": "", "notebook": d}))
    assert note == ""
    assert [o.text for o in merged.cells[0].outputs] == [
        "0\n",
        "1\n",
        "2\n",
        "… 149,997 more outputs not shown (max_outputs_per_cell)",
    ]


def test_a_result_nbgrader_cannot_read_as_points_scores_nothing():
    """A submission can make a graded cell's result anything (sys.displayhook): a number over
    the cell's points, or no text at all; nbgrader raises on both, the cell scores 0."""
    nb, _ = merge_outputs(_prepared(), _returned(_prepared()))
    cell = nb.cells[1]
    cell.execution_count = 2
    for data in ({"text/plain": "1e9"}, {"image/png": "iVBORw0KGgo="}):
        cell.outputs = [nbformat.v4.new_output("execute_result", data=data, execution_count=2)]
        assert _kernel_score(cell) == 0.0
