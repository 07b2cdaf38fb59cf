"""The diagnosis: fingerprints that mean what an answer means, and trusted code that hands the
student's functions nothing but their probes' inputs."""

import functools

import nbformat
import numpy as np
import pytest

from tito.course import catalogue
from tito.course.settings import Course


@functools.cache
def _fingerprint():
    """The module's own fingerprint(answers), from its test-support cell."""
    m = Course().module("06")
    return catalogue.fingerprint_function(nbformat.read(Course().source_notebook(m), as_version=4))


def fp(*answers):
    return _fingerprint()(list(answers))


def test_numbers_count_to_nine_significant_digits_and_tiny_ones_as_zero():
    assert fp(np.array([1.0, 2.0]), 0.5) == fp(np.array([1.0 + 1e-12, 2.0]), 0.5 + 1e-13)
    assert fp(np.array([1.0, 2.0])) != fp(np.array([1.0, 2.0 + 1e-6]))
    assert fp(np.array([0.0, 3.0])) == fp(np.array([-0.0, 3.0])) == fp(np.array([1e-13, 3.0]))
    assert fp(np.float32(0.1)) != fp(0.1)  # float32's 0.1 is 0.100000001 to nine digits


def test_shapes_kinds_and_lengths_tell_answers_apart():
    assert fp(np.array([1.0, 2.0])) != fp(np.array([[1.0, 2.0]]))
    assert fp(True) != fp(1) and fp(1.0) != fp("1.0") and fp(None) != fp(0.0)
    assert fp(0.5) != fp(0.5, 0.5)
    assert fp("raised TypeError") != fp("raised ValueError")


def test_a_non_finite_answer_means_what_a_raised_arithmetic_error_means():
    nonfinite = fp([np.array([np.nan, 1.0]), 2])
    assert nonfinite == fp(np.array([np.inf])) == fp("raised ZeroDivisionError")
    assert nonfinite == fp("raised FloatingPointError") == fp("raised OverflowError")
    assert nonfinite != fp("raised TypeError") and nonfinite != fp([np.array([0.0, 1.0]), 2])


def _nested(depth):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


CYCLE: list = []
CYCLE.append(CYCLE)


@pytest.mark.parametrize(
    "odd",
    [
        {"a": np.zeros(3)},
        np.array([{}, 1], dtype=object),
        object(),
        [[np.zeros(2)], {}],
        10**400,  # a step counter no float holds
        _nested(10_000),
        CYCLE,
        list(range(500_000)),  # what a 1 MB reply can hold
        [[[list(range(100))] * 100] * 100],  # a million numbers in short lists
        np.array([1 + 2j]),
    ],
    ids=[
        "dict",
        "object-array",
        "object",
        "list-of-odd",
        "huge-int",
        "deep",
        "cycle",
        "long",
        "wide",
        "complex",
    ],
)
def test_values_a_student_left_are_fingerprinted_without_raising(odd):
    """A student's function answers the probe in the judge; what it returns is fingerprinted by
    trusted code, so nothing it can return may raise there or cost much: lists are read four
    deep, 100 long and 10,000 items in all at most."""
    assert len(fp(odd)) == 20 and fp(odd) != fp(np.zeros(2))


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
    from tito.course.catalogue import answers

    _, calls, names, namespace, catalogue = _diagnosed_with_calls(failed=None)
    alone = []
    for region, name in names.items():
        if region not in catalogue.probes:
            continue

        def record(*args, _name=name, _region=region, **kwargs):
            alone.append((_region, _name, _snapshot((args, kwargs))))
            return namespace[_name](*args, **kwargs)

        answers(catalogue.probes[region], record, {**namespace})
    assert len(calls) > 100 and calls == alone


def test_a_region_is_named_only_when_one_of_its_own_cells_failed():
    """Every region is probed (a caller is named only when its callees behave); only regions
    one of whose cells failed are named: not the right AdamW that calls the wrong Adam."""
    assert _diagnosed_with_calls(failed=set())[0] == {}
    assert _diagnosed_with_calls(failed={"adamw_decays_before_update"})[0] == {}
    found = _diagnosed_with_calls(failed={"adam_first_step_moves_lr"})[0]
    assert list(found) == ["adam_step_impl"]
