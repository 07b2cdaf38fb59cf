"""The diagnosis's comparison of observations: exact where it must be, and never raising on odd
values."""

import copy

import numpy as np

from tito.course.grading.diagnosis import same


def test_numbers_and_arrays_match_to_the_tolerance_and_everything_else_exactly():
    assert same(
        [np.array([1.0, np.nan]), 0.5, True, None, "raised ZeroDivisionError"],
        [np.array([1.0 + 1e-12, np.nan]), 0.5 + 1e-13, True, None, "raised ZeroDivisionError"],
        1e-9,
        1e-12,
    )
    assert not same([np.array([1.0, 2.0])], [np.array([1.0, 2.0 + 1e-6])], 1e-9, 1e-12)
    assert not same([np.array([1.0, 2.0])], [np.array([[1.0, 2.0]])], 1e-9, 1e-12)  # another shape
    assert not same([True], [1], 1e-9, 1e-12) and not same([1.0], ["1.0"], 1e-9, 1e-12)
    assert not same([0.5], [0.5, 0.5], 1e-9, 1e-12)


def test_values_a_student_left_that_cannot_be_compared_match_nothing_and_raise_nothing():
    odd = [[np.zeros(2), np.ones(2)], {"a": np.zeros(3)}, np.array([{}, 1], dtype=object)]
    for value in odd:
        assert not same([value], [np.zeros(2)], 1e-9, 1e-12)
        assert not same(
            [value], [copy.deepcopy(value)], 1e-9, 1e-12
        )  # not comparable, so not alike, even with a copy


def _diagnosed_with_calls(failed):
    """The diagnosis of a submission with Adam's step counted from 0 (AdamW right, calling the
    student's Adam), its functions run here: what it names, and every (region probed, function
    called) pair of the calls trusted code made to the student's functions."""
    import nbformat

    from tests import submissions as sub
    from tito.course.grading import diagnosis
    from tito.course.notebooks import is_export_cell
    from tito.course.settings import Course

    m = Course().module("06")
    reference = nbformat.read(Course().source_notebook(m), as_version=4)
    catalogue = diagnosis.load(m.mistakes.read_text(encoding="utf-8"))
    bug = next(x for x in catalogue.mistakes if x["id"] == "adam-step-from-zero")
    namespace: dict = {}
    for cell in sub.replace_region(reference, bug["region"], bug["code"]).cells:
        if is_export_cell(cell):
            exec(cell.source, namespace)
    names = diagnosis.region_functions(reference)
    calls, probing = [], {}

    def through_proxy(name):
        def call(*args, **kwargs):
            calls.append((probing["region"], name, _snapshot((args, kwargs))))
            return namespace[name](*args, **kwargs)

        return call

    found = diagnosis.diagnose(
        reference,
        catalogue,
        {n: through_proxy(n) for n in names.values()},
        before_region=lambda region: probing.update(region=region),
        failed=failed,
    )
    return found, calls, names, namespace, catalogue


def _snapshot(value):
    """A value as plain data, arrays and Tensors by their contents, to compare calls by."""
    import numpy as np

    from tinytorch.core.tensor import Tensor

    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, Tensor):
        return ("tensor", _snapshot(value.data), _snapshot(value.grad))
    if isinstance(value, dict):
        return ("dict", tuple((k, _snapshot(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_snapshot(v) for v in value))
    return repr(value)


def test_trusted_code_calls_a_students_function_only_from_its_own_regions_probe():
    """The reference and the wrong versions call the reference's other functions: AdamW's
    reference never calls the student's Adam, so no value only the reference computed reaches
    the student's code; the student's function gets only its probe's fixed inputs."""
    found, calls, names, _, _ = _diagnosed_with_calls(failed=None)
    assert calls and {(region, name) for region, name, _ in calls if names[region] != name} == set()
    assert {r: d["ids"] for r, d in found.items()} == {
        "adam_step_impl": ["adam-step-from-zero", "adam-bias-correction-t-minus-one"]
    }


def test_the_students_functions_receive_only_their_probes_inputs_and_their_own_results():
    """Every value the student's functions receive during the diagnosis, recorded: exactly what
    each region's probe passes the student's function when it runs on it alone (its fixed inputs,
    and what the function itself returned or changed), call for call. A value only the
    reference computed (AdamW's decayed parameter, handed to the student's Adam) would be an
    extra call here."""
    from tito.course.grading import diagnosis

    _, calls, names, namespace, catalogue = _diagnosed_with_calls(failed=None)
    alone = []
    for region, name in names.items():
        if region not in catalogue.probes:
            continue

        def record(*args, _name=name, _region=region, **kwargs):
            alone.append((_region, _name, _snapshot((args, kwargs))))
            return namespace[_name](*args, **kwargs)

        diagnosis.observe(catalogue.probes[region], record, {**namespace})
    assert len(calls) > 100 and calls == alone


def test_a_region_is_named_only_when_one_of_its_own_cells_failed():
    """Every region is probed (a caller is named only when its callees behave); only regions
    one of whose cells failed are named: not the right AdamW that calls the wrong Adam."""
    assert _diagnosed_with_calls(failed=set())[0] == {}
    assert _diagnosed_with_calls(failed={"adamw_decays_before_update"})[0] == {}
    found = _diagnosed_with_calls(failed={"adam_first_step_moves_lr"})[0]
    assert list(found) == ["adam_step_impl"]
