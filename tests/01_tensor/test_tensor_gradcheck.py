"""Every differentiable operation against central finite differences in float64.

The output of each function is contracted with a fixed random weight array before the
backward pass, so the upstream gradient is not all ones and a wrong transpose or a
missing broadcast sum shows up. Central differences with h = 1e-6 have truncation error
of order h^2 * f''' and rounding error of order 1e-16 / h, both far below the tolerance
(rtol 1e-6, atol 1e-8) for the smooth, O(1)-scaled inputs used here.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from tinytorch.core.tensor import Linear, Sequential, Tensor, cross_entropy, mse_loss

H = 1e-6


def check_gradients(fn, *arrays, seed=0):
    """Compare the backward pass of `fn(*tensors)` with central differences for every input."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    weights = np.random.default_rng(seed).normal(size=out.shape)
    (out * weights).sum().backward()

    def objective(values):
        return float(np.sum(fn(*[Tensor(v) for v in values]).data * weights))

    for i, (a, t) in enumerate(zip(arrays, tensors)):
        assert t.grad.shape == a.shape and t.grad.dtype == np.float64
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [v.copy() for v in arrays]
            minus = [v.copy() for v in arrays]
            plus[i][idx] += H
            minus[i][idx] -= H
            numeric[idx] = (objective(plus) - objective(minus)) / (2 * H)
        np.testing.assert_allclose(t.grad, numeric, rtol=1e-6, atol=1e-8, err_msg=f"input {i}")


rng = np.random.default_rng(42)


def normal(*shape):
    return rng.normal(size=shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, size=shape)


def away_from_zero(*shape):
    """Values with |x| >= 0.3, so relu's kink is never inside the finite-difference step."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.3, 2.0, size=shape)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}

SHAPE_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (3, 1)),
    ((), (2, 3)),
    ((2, 1, 3), (4, 1)),
    ((3, 4), (1, 1)),
    ((1, 3, 1), (2, 1, 4)),
]


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
def test_binary_op_with_broadcasting(op, shapes):
    check_gradients(BINARY[op], normal(*shapes[0]), positive(*shapes[1]))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: 2.5 + x,
        lambda x: x + 2.5,
        lambda x: 2.5 - x,
        lambda x: x - 2.5,
        lambda x: 2.5 * x,
        lambda x: x * 2.5,
        lambda x: 2.5 / x,
        lambda x: x / 2.5,
        lambda x: -x,
    ],
    ids=["radd", "add", "rsub", "sub", "rmul", "mul", "rtruediv", "truediv", "neg"],
)
def test_ops_with_a_python_scalar(fn):
    check_gradients(fn, positive(2, 3))


def test_ops_with_an_ndarray_on_either_side():
    c = normal(3)
    check_gradients(lambda x: c * x - x / (c * c + 1) + (c + x) @ np.eye(3), normal(2, 3))


@pytest.mark.parametrize("p", [2, 3, -1, 0.5, -1.5, 0])
def test_power_with_scalar_exponent(p):
    check_gradients(lambda x: x**p, positive(2, 3))


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4, 5)),
        ((2, 3, 4), (1, 4, 5)),
        ((3, 4), (2, 4, 5)),
    ],
    ids=str,
)
def test_matmul(shapes):
    check_gradients(lambda a, b: a @ b, normal(*shapes[0]), normal(*shapes[1]))


@pytest.mark.parametrize("method", ["sum", "mean"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(method, axis, keepdims):
    check_gradients(lambda x: getattr(x, method)(axis=axis, keepdims=keepdims), normal(2, 3, 4))


@pytest.mark.parametrize(
    "name,make",
    [
        ("exp", normal),
        ("log", positive),
        ("relu", away_from_zero),
        ("sigmoid", normal),
        ("tanh", normal),
    ],
)
def test_elementwise_functions(name, make):
    check_gradients(lambda x: getattr(x, name)(), make(3, 4))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.reshape(4, 6),
        lambda x: x.reshape((-1,)),
        lambda x: x.transpose(0, 2),
        lambda x: x.transpose(-1, -2),
        lambda x: x.permute(1, 2, 0),
        lambda x: x.T,
    ],
    ids=["reshape", "flatten", "transpose02", "transpose_neg", "permute", "T"],
)
def test_shape_ops(fn):
    check_gradients(fn, normal(2, 3, 4))


@pytest.mark.parametrize(
    "index",
    [
        1,
        -1,
        slice(None, None, -1),
        (slice(None), 2),
        (Ellipsis, 0),
        (np.array([0, 0, 2]),),
        np.array([[True, False, True, False]] * 3),
        (np.array([0, 2, 2]), np.array([1, 3, 1])),
    ],
    ids=["int", "negative", "reversed", "column", "ellipsis", "repeated", "mask", "pairs"],
)
def test_indexing(index):
    check_gradients(lambda x: x[index], normal(3, 4))


def test_mse_loss():
    check_gradients(lambda p, t: mse_loss(p, t), normal(5, 2), normal(5, 2))


def test_cross_entropy():
    labels = np.array([0, 2, 1, 2])
    check_gradients(lambda z: cross_entropy(z, labels), normal(4, 3) * 3)


def test_cross_entropy_with_large_logits():
    labels = np.array([1, 0])
    check_gradients(
        lambda z: cross_entropy(z, labels), normal(2, 3) + np.array([[500.0], [-700.0]])
    )


def test_two_layer_network_through_its_input():
    rng_model = np.random.default_rng(3)
    model = Sequential(
        Linear(3, 5, rng=rng_model, dtype=np.float64),
        Tensor.tanh,
        Linear(5, 2, rng=rng_model, dtype=np.float64),
        Tensor.sigmoid,
    )
    check_gradients(model, normal(4, 3))


def test_network_weights_via_functional_form():
    # The weights as inputs, so every parameter gradient is checked as well.
    def net(x, w1, b1, w2, b2):
        return cross_entropy((x @ w1.T + b1).relu() @ w2.T + b2, np.array([0, 1, 1, 0]))

    check_gradients(net, normal(4, 3), normal(5, 3), away_from_zero(5), normal(2, 5), normal(2))


# ----- property-based: random broadcastable shapes -----


@settings(max_examples=40, deadline=None)
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    op=st.sampled_from(sorted(BINARY)),
    seed=st.integers(0, 2**32 - 1),
)
def test_binary_ops_on_any_broadcastable_shapes(shapes, op, seed):
    r = np.random.default_rng(seed)
    a = r.normal(size=shapes.input_shapes[0])
    b = r.uniform(0.5, 2.0, size=shapes.input_shapes[1]) * r.choice(
        [-1.0, 1.0], size=shapes.input_shapes[1]
    )
    check_gradients(BINARY[op], a, b, seed=seed)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
    data=st.data(),
    keepdims=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_sum_over_any_axes(shape, data, keepdims, seed):
    axes = sorted(data.draw(st.sets(st.integers(0, len(shape) - 1))))
    if data.draw(st.booleans()):  # the same axes counted from the end
        axes = [a - len(shape) for a in axes]
    x = np.random.default_rng(seed).normal(size=shape)
    check_gradients(lambda t: t.sum(axis=tuple(axes), keepdims=keepdims) * 1.5, x, seed=seed)
