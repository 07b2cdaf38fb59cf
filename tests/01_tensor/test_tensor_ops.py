"""Hand-computed values, dtype rules, the gradient contract and bad input of tinytorch.core.tensor.

Inputs are small integers, halves and quarters so that most expected values are exact in
floating point and compared with ``==``; transcendental functions are compared with
``np.isclose`` at its default tolerance against their closed forms.
"""

import re

import numpy as np
import pytest

from tinytorch.core.tensor import (
    Linear,
    Module,
    Parameter,
    Sequential,
    Tensor,
    _unbroadcast,
    cross_entropy,
    mse_loss,
    no_grad,
)

# ----- construction and dtype rules -----


def test_python_numbers_and_lists_become_float32():
    assert Tensor(3).dtype == np.float32
    assert Tensor(2.5).data.shape == ()
    assert Tensor([[1, 2], [3, 4]]).dtype == np.float32
    assert Tensor(True).data == np.float32(1.0)


def test_floating_ndarrays_keep_their_dtype_and_memory():
    arr = np.array([1.0, 2.0])
    t = Tensor(arr)
    assert t.dtype == np.float64
    assert t.data is arr
    assert Tensor(np.ones(2, dtype=np.float16)).dtype == np.float16
    assert Tensor(np.float64(2.0)).dtype == np.float64


def test_integer_ndarrays_are_kept_for_labels():
    labels = Tensor(np.array([0, 2, 1]))
    assert labels.dtype == np.int64
    assert not labels.requires_grad


def test_data_is_always_an_ndarray():
    for data in [1.0, [1.0, 2.0], np.float32(3.0), np.arange(3.0), Tensor([1.0])]:
        assert type(Tensor(data).data) is np.ndarray


def test_shape_dtype_ndim_size_item_and_numpy():
    t = Tensor(np.zeros((2, 3)))
    assert (t.shape, t.dtype, t.ndim, t.size) == ((2, 3), np.float64, 2, 6)
    assert t.numpy() is t.data
    assert Tensor([[7.5]]).item() == 7.5


def test_repr_shows_values_then_non_default_dtype_then_requires_grad():
    assert repr(Tensor([1.0, 2.0])) == "Tensor([1., 2.])"
    assert (
        repr(Tensor(np.array([0.5]), requires_grad=True))
        == "Tensor([0.5], dtype=float64, requires_grad=True)"
    )
    assert repr(Parameter(np.zeros((2, 2)))) == (
        "Parameter([[0., 0.],\n           [0., 0.]], dtype=float64, requires_grad=True)"
    )


def test_parameter_requires_grad_and_shares_memory():
    arr = np.ones(3, dtype=np.float32)
    p = Parameter(arr)
    assert p.requires_grad and p.grad is None and p.data is arr
    assert isinstance(p, Tensor)


def test_non_numeric_data_is_rejected():
    with pytest.raises(TypeError, match=r"must be numeric .* got str with dtype <U3"):
        Tensor("abc")
    with pytest.raises(TypeError, match=r"must be numeric .* got NoneType with dtype object"):
        Tensor(None)
    with pytest.raises(TypeError, match=r"must be numeric .* dtype complex128"):
        Tensor(np.array([1j]))


def test_integer_data_cannot_require_grad():
    with pytest.raises(
        TypeError, match=r"only floating tensors can require gradients; got dtype int64"
    ):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match=r"got dtype int32"):
        Parameter(np.arange(3, dtype=np.int32))


# ----- hand-computed forward values and gradients -----


def test_product_plus_square_has_hand_computed_gradients():
    x = Tensor(3.0, requires_grad=True)
    y = Tensor(2.0, requires_grad=True)
    f = x * y + y**2
    f.backward()
    assert f.item() == 10.0
    assert x.grad == 2.0 and y.grad == 7.0  # y + 0, x + 2y


def test_value_used_twice_collects_both_paths():
    x = Tensor(3.0, requires_grad=True)
    y = x * 2
    (y * y + y).backward()  # d/dx = (2y + 1) * 2 = 26 at y = 6
    assert x.grad == 26.0


def test_division_gradients():
    a = Tensor(6.0, requires_grad=True)
    b = Tensor(4.0, requires_grad=True)
    q = a / b
    q.backward()
    assert q.item() == 1.5
    assert a.grad == 0.25 and b.grad == -6.0 / 16.0


def test_scalars_on_either_side():
    x = Tensor([2.0], requires_grad=True)
    out = (1 + x) * (3 - x) / (8 / x) + (x - 1) * 2 - (x / 4)
    # (1+x)(3-x) x / 8 + 2x - 2 - x/4 at x=2: 3*1*2/8 + 4 - 2 - 0.5 = 2.25
    assert out.data[0] == 2.25
    out.sum().backward()
    # d/dx [(3x + 2x^2 - x^3)/8] + 2 - 1/4 = (3 + 4x - 3x^2)/8 + 1.75 = -1/8 + 1.75
    assert x.grad[0] == 1.625


def test_unary_minus_and_power():
    x = Tensor([2.0, 4.0], requires_grad=True)
    out = -(x**3) + x**0.5 + x**0 + x**-1
    out.sum().backward()
    assert np.allclose(out.data, [-8 + np.sqrt(2) + 1 + 0.5, -64 + 2 + 1 + 0.25])
    assert np.allclose(x.grad, [-12 + 0.5 / np.sqrt(2) - 0.25, -48 + 0.25 - 1 / 16])


def test_power_zero_has_zero_gradient_at_zero():
    x = Tensor([0.0], requires_grad=True)
    (x**0).sum().backward()
    assert np.array_equal(x.grad, [0.0])


def test_elementwise_functions_at_hand_computed_points():
    x = Tensor([0.0, 2.0], requires_grad=True)
    x.sigmoid().sum().backward()
    assert np.isclose(x.grad[0], 0.25)
    x.grad = None
    x.tanh().sum().backward()
    assert x.grad[0] == 1.0 and np.isclose(x.grad[1], 1 - np.tanh(2.0) ** 2)
    x.grad = None
    x.exp().sum().backward()
    assert x.grad[0] == 1.0 and np.isclose(x.grad[1], np.exp(2.0))
    x.grad = None
    (x + 2).log().sum().backward()
    assert np.array_equal(x.grad, [0.5, 0.25])


def test_sigmoid_of_large_inputs_is_exact_and_silent():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = Tensor([-1000.0, 0.0, 1000.0]).sigmoid()
    assert np.array_equal(out.data, [0.0, 0.5, 1.0])


def test_relu_passes_gradient_only_where_positive():
    x = Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    y = x.relu()
    y.sum().backward()
    assert np.array_equal(y.data, [0.0, 0.0, 2.0])
    assert np.array_equal(x.grad, [0.0, 0.0, 1.0])


def test_matmul_gradients_are_g_bt_and_at_g():
    a = Tensor([[1.0, 2.0]], requires_grad=True)
    b = Tensor([[3.0, 5.0], [4.0, 6.0]], requires_grad=True)
    out = a @ b
    assert np.array_equal(out.data, [[11.0, 17.0]])
    out.backward(np.array([[1.0, 10.0]]))
    assert np.array_equal(a.grad, [[53.0, 64.0]])
    assert np.array_equal(b.grad, [[1.0, 10.0], [2.0, 20.0]])


def test_sum_and_mean_over_axes():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    s = x.sum(axis=0)
    assert np.array_equal(s.data, [3.0, 5.0, 7.0])
    s.backward(np.array([1.0, 2.0, 3.0]))
    assert np.array_equal(x.grad, [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    x.grad = None
    m = x.mean(axis=-1, keepdims=True)
    assert np.array_equal(m.data, [[1.0], [4.0]])
    m.sum().backward()
    assert np.allclose(x.grad, np.full((2, 3), 1 / 3))
    assert x.mean().item() == 2.5


def test_indexing_with_repeated_indices_adds_gradients():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x[np.array([0, 0, 1])]
    assert np.array_equal(y.data, [1.0, 1.0, 2.0])
    y.sum().backward()
    assert np.array_equal(x.grad, [2.0, 1.0, 0.0])


def test_reshape_transpose_and_T_follow_pytorch():
    x = Tensor(np.arange(24.0).reshape(2, 3, 4))
    assert x.transpose(0, 2).shape == (4, 3, 2)
    assert x.T.shape == (4, 3, 2)
    assert x.permute(1, 0, 2).shape == (3, 2, 4)
    assert x.reshape(6, 4).shape == x.reshape((6, 4)).shape == (6, 4)
    m = Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert np.array_equal(m.transpose(0, 1).data, [[1.0, 3.0], [2.0, 4.0]])
    assert np.array_equal(m.T.data, m.transpose(1, 0).data)


def test_broadcast_bias_gets_summed_gradient():
    b = Tensor(np.zeros(3), requires_grad=True)
    (Tensor(np.ones((4, 3))) + b).sum().backward()
    assert np.array_equal(b.grad, [4.0, 4.0, 4.0])
    assert b.grad.dtype == np.float64


def test_unbroadcast_sums_added_and_stretched_axes():
    g = np.arange(12.0).reshape(4, 3)
    assert np.array_equal(_unbroadcast(g, (3,)), [18.0, 22.0, 26.0])
    assert np.array_equal(_unbroadcast(g, (4, 1)), [[3.0], [12.0], [21.0], [30.0]])
    assert np.array_equal(_unbroadcast(g, ()), 66.0)
    assert _unbroadcast(g, (4, 3)) is g


def test_python_and_numpy_scalars_keep_float32():
    x = Tensor(np.ones(2, dtype=np.float32))
    assert (x * np.float64(2.0)).dtype == np.float32
    assert (2.0 / x).dtype == np.float32
    assert (x ** np.float64(2.0)).dtype == np.float32


def test_ndarray_on_the_left_gives_a_tensor():
    x = Tensor([1.0, 2.0], requires_grad=True)
    out = np.array([3.0, 4.0]) * x
    assert isinstance(out, Tensor) and out.requires_grad
    out.sum().backward()
    assert np.array_equal(x.grad, [3.0, 4.0])
    assert isinstance(np.eye(2) @ x, Tensor)


# ----- the gradient contract -----


def test_backward_accumulates_across_calls():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    assert np.array_equal(x.grad, [6.0, 6.0])
    x.grad = None
    (x * 3).sum().backward()
    assert np.array_equal(x.grad, [3.0, 3.0])


def test_first_gradient_is_a_private_copy():
    a = Tensor([1.0], requires_grad=True)
    b = Tensor([1.0], requires_grad=True)
    (a + b).sum().backward()  # both receive the same upstream array
    a.grad += 5.0
    assert b.grad[0] == 1.0


def test_backward_adds_in_place_into_an_assigned_gradient():
    x = Tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    g = np.array([1.0, 1.0], dtype=np.float32)
    x.grad = g
    (x * 2).sum().backward()
    assert x.grad is g
    assert np.array_equal(g, [3.0, 3.0])


def test_intermediate_results_keep_no_grad():
    x = Tensor([1.0], requires_grad=True)
    y = x * 2
    (y * 3).sum().backward()
    assert y.grad is None and x.grad[0] == 6.0


def test_explicit_upstream_gradient_for_non_scalar_output():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * x).backward(np.array([1.0, 0.5]))
    assert np.array_equal(x.grad, [2.0, 2.0])


def test_gradient_dtype_and_shape_match_data():
    p = Parameter(np.ones((2, 3), dtype=np.float32))
    mixed = p * Tensor(np.full((2, 3), 2.0))  # float64 operand promotes the result
    mixed.sum().backward()
    assert p.grad.dtype == np.float32 and p.grad.shape == (2, 3)
    assert np.array_equal(p.grad, np.full((2, 3), 2.0))


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = Tensor(0.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.backward()
    assert y.item() == 5000.0 and x.grad == 1.0


def test_grad_assignment_casts_to_the_data_dtype():
    p = Parameter(np.zeros(2, dtype=np.float32))
    p.grad = np.array([0.5, 1.0])  # float64
    assert p.grad.dtype == np.float32 and np.array_equal(p.grad, [0.5, 1.0])
    p.grad = [1, 2]
    assert p.grad.dtype == np.float32
    p.grad = None
    assert p.grad is None


def test_grad_assignment_of_wrong_shape_names_both_shapes():
    p = Parameter(np.zeros((2, 3)))
    with pytest.raises(
        ValueError, match=re.escape("gradient shape (3, 2) does not match tensor shape (2, 3)")
    ):
        p.grad = np.zeros((3, 2))
    with pytest.raises(
        ValueError, match=re.escape("gradient shape () does not match tensor shape (2, 3)")
    ):
        p.grad = 1.0


def test_grad_assignment_of_non_numeric_data_is_rejected():
    p = Parameter(np.zeros(1))
    with pytest.raises(
        TypeError, match="cannot assign a gradient of dtype <U1 to a tensor of dtype float64"
    ):
        p.grad = np.array(["a"])


def test_backward_on_non_scalar_without_gradient_is_an_error():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(
        RuntimeError, match=re.escape("needs a one-element output; this output has shape (2,)")
    ):
        (x * 2).backward()


def test_backward_with_gradient_of_wrong_shape_is_an_error():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(
        ValueError, match=re.escape("gradient shape (3,) does not match output shape (2,)")
    ):
        (x * 2).backward(np.ones(3))


def test_backward_on_tensor_without_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=re.escape("matmul shape mismatch: (2, 3) @ (2, 3)")):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=re.escape("matmul shape mismatch: () @ (2,)")):
        Tensor(1.0) @ Tensor([1.0, 2.0])


def test_tensor_exponent_is_rejected():
    with pytest.raises(TypeError, match="only a number can be an exponent; got Tensor"):
        Tensor([2.0]) ** Tensor([2.0])


# ----- no_grad and detach -----


def test_no_grad_records_nothing_and_restores_on_exit():
    w = Tensor([1.0], requires_grad=True)
    with no_grad():
        y = w * 2
        with no_grad():
            pass
        assert not (w + 1).requires_grad  # still off after the nested block
    assert not y.requires_grad and y._backward is None
    assert (w * 2).requires_grad


def test_no_grad_restores_recording_after_an_exception():
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("boom")
    assert (w * 2).requires_grad


def test_no_grad_works_as_a_decorator():
    @no_grad()
    def predict(w):
        return w * 2

    assert not predict(Tensor([1.0], requires_grad=True)).requires_grad


def test_detach_shares_data_and_cuts_the_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d._parents == ()
    e = x.detach()
    assert e.data is x.data


# ----- losses -----


def test_mse_loss_of_hand_computed_values():
    pred = Tensor([1.0, 2.0, 4.0], requires_grad=True)
    loss = mse_loss(pred, np.array([1.0, 0.0, 1.0]))
    assert loss.item() == (0 + 4 + 9) / 3
    loss.backward()
    assert np.allclose(pred.grad, [0.0, 4 / 3, 2.0])  # 2 (pred - target) / n


def test_mse_loss_refuses_to_broadcast_mismatched_shapes():
    with pytest.raises(
        ValueError, match=re.escape("pred shape (4, 1) and target shape (4,) differ")
    ):
        mse_loss(Tensor(np.zeros((4, 1))), Tensor(np.zeros(4)))


def test_cross_entropy_of_hand_computed_values():
    logits = Tensor(np.array([[0.0, np.log(3.0)]]), requires_grad=True)
    loss = cross_entropy(logits, np.array([1]))
    assert np.isclose(loss.item(), -np.log(0.75))
    loss.backward()
    assert np.allclose(logits.grad, [[0.25, -0.25]])  # softmax - onehot


def test_cross_entropy_of_equal_logits_is_log_classes():
    z = Tensor(np.zeros((2, 4)), requires_grad=True)
    loss = cross_entropy(z, Tensor(np.array([1, 3])))
    assert np.isclose(loss.item(), np.log(4))
    loss.backward()
    assert np.allclose(z.grad, [[0.125, -0.375, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]])


def test_cross_entropy_is_stable_for_huge_logits():
    z = Tensor(np.array([[1000.0, 0.0], [-1000.0, 1000.0]]), requires_grad=True)
    with np.errstate(
        over="raise", invalid="raise", divide="raise"
    ):  # exp(-2000) may underflow to 0
        loss = cross_entropy(z, [0, 0])
        loss.backward()
    assert loss.item() == 1000.0  # (0 + 2000) / 2
    assert np.array_equal(z.grad, [[0.0, 0.0], [-0.5, 0.5]])


def test_cross_entropy_rejects_bad_labels_and_logits():
    z = Tensor(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="expects integer class labels; got dtype float64"):
        cross_entropy(z, np.array([0.0, 1.0]))
    with pytest.raises(
        ValueError, match=re.escape("labels shape (3,) does not match 2 rows of logits")
    ):
        cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(
        ValueError, match=re.escape("labels must lie in [0, 3); got values from 0 to 3")
    ):
        cross_entropy(z, np.array([0, 3]))
    with pytest.raises(
        ValueError, match=re.escape("labels must lie in [0, 3); got values from -1 to 1")
    ):
        cross_entropy(z, np.array([-1, 1]))
    with pytest.raises(ValueError, match=re.escape("expects logits of shape (N, C); got (3,)")):
        cross_entropy(Tensor(np.zeros(3)), np.array([0]))


# ----- layers and parameters -----


def test_linear_uses_pytorch_layout_and_he_initialisation():
    layer = Linear(4, 3, rng=np.random.default_rng(7))
    expected = (
        np.random.default_rng(7).normal(0.0, np.sqrt(2.0 / 4), size=(3, 4)).astype(np.float32)
    )
    assert layer.weight.shape == (3, 4) and layer.weight.dtype == np.float32
    assert np.array_equal(layer.weight.data, expected)
    assert np.array_equal(layer.bias.data, np.zeros(3, dtype=np.float32))
    assert layer.parameters() == [layer.weight, layer.bias]


def test_linear_forward_is_x_wt_plus_b():
    layer = Linear(2, 2, rng=np.random.default_rng(0), dtype=np.float64)
    layer.weight.data[...] = [[1.0, 2.0], [3.0, 4.0]]
    layer.bias.data[...] = [0.5, -0.5]
    out = layer(Tensor(np.array([[1.0, 1.0]])))
    assert np.array_equal(out.data, [[3.5, 6.5]])
    assert out.dtype == np.float64


def test_linear_without_bias_has_one_parameter():
    layer = Linear(3, 2, bias=False, rng=np.random.default_rng(0))
    assert layer.bias is None and layer.parameters() == [layer.weight]


def test_linear_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="got in_features=0, out_features=3"):
        Linear(0, 3)


def test_parameters_walk_nested_modules_in_order_and_once():
    rng = np.random.default_rng(0)
    shared = Linear(2, 2, rng=rng)

    class Net(Module):
        def __init__(self):
            self.body = Sequential(shared, Tensor.relu, Linear(2, 3, rng=rng))
            self.head = shared  # tied weights are listed once
            self.scale = Parameter(np.ones(1))
            self.note = "not a parameter"

        def forward(self, x):
            return self.head(self.body(x)[:, :2]) * self.scale

    net = Net()
    params = net.parameters()
    assert [p.shape for p in params] == [(2, 2), (2,), (3, 2), (3,), (1,)]
    assert params[0] is shared.weight and params[-1] is net.scale
    net(Tensor(np.ones((1, 2)))).sum().backward()
    assert all(p.grad is not None for p in params)
    net.zero_grad()
    assert all(p.grad is None for p in params)


def test_sequential_applies_layers_in_order():
    model = Sequential(lambda x: x * 2, lambda x: x + 1)
    assert model(Tensor([3.0])).item() == 7.0
