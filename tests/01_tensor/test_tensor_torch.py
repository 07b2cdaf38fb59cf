"""tinytorch.core.tensor against PyTorch in float64: losses and every gradient to 1e-12.

torch is a test oracle only; without it these tests are skipped.
"""

import numpy as np
import pytest

from tinytorch.core.tensor import Linear, Sequential, Tensor, cross_entropy, mse_loss

torch = pytest.importorskip("torch")
F = torch.nn.functional

ATOL = 1e-12


def torch_copy(model):
    """The same weights as leaf torch tensors, in parameters() order (weight, bias, ...)."""
    return [torch.tensor(p.data, requires_grad=True) for p in model.parameters()]


def make_mlp(rng, sizes, activations):
    layers = []
    for (n_in, n_out), act in zip(zip(sizes, sizes[1:]), activations):
        layers.append(Linear(n_in, n_out, rng=rng, dtype=np.float64))
        if act is not None:
            layers.append(act)
    return Sequential(*layers)


def assert_same_grads(model, torch_params):
    for i, (p, tp) in enumerate(zip(model.parameters(), torch_params)):
        assert p.grad.dtype == np.float64
        np.testing.assert_allclose(
            p.grad, tp.grad.numpy(), rtol=0, atol=ATOL, err_msg=f"parameter {i}"
        )


def test_relu_mlp_with_cross_entropy_matches_torch():
    rng = np.random.default_rng(0)
    model = make_mlp(rng, [4, 8, 6, 3], [Tensor.relu, Tensor.relu, None])
    X = rng.normal(size=(10, 4))
    y = rng.integers(0, 3, size=10)

    loss = cross_entropy(model(Tensor(X)), y)
    loss.backward()

    w1, b1, w2, b2, w3, b3 = tp = torch_copy(model)
    x = torch.tensor(X)
    h = torch.relu(torch.relu(x @ w1.T + b1) @ w2.T + b2)
    t_loss = F.cross_entropy(h @ w3.T + b3, torch.tensor(y))
    t_loss.backward()

    assert abs(loss.item() - t_loss.item()) < ATOL
    assert_same_grads(model, tp)


def test_tanh_sigmoid_mlp_with_mse_matches_torch():
    rng = np.random.default_rng(1)
    model = make_mlp(rng, [3, 5, 2], [Tensor.tanh, Tensor.sigmoid])
    X = rng.normal(size=(7, 3))
    target = rng.uniform(size=(7, 2))

    loss = mse_loss(model(Tensor(X)), target)
    loss.backward()

    w1, b1, w2, b2 = tp = torch_copy(model)
    pred = torch.sigmoid(torch.tanh(torch.tensor(X) @ w1.T + b1) @ w2.T + b2)
    t_loss = F.mse_loss(pred, torch.tensor(target))
    t_loss.backward()

    assert abs(loss.item() - t_loss.item()) < ATOL
    assert_same_grads(model, tp)


def test_composite_expression_with_broadcasting_matches_torch():
    rng = np.random.default_rng(2)
    a_np, b_np, c_np = (
        rng.normal(size=(2, 3, 4)),
        rng.uniform(0.5, 2, size=(3, 1)),
        rng.normal(size=(4,)),
    )
    a, b, c = (Tensor(v, requires_grad=True) for v in (a_np, b_np, c_np))
    ta, tb, tc = (torch.tensor(v, requires_grad=True) for v in (a_np, b_np, c_np))

    def expr(a, b, c):
        z = (a * c - 1.5 / b) ** 2 + (a / b).exp()
        return (z.sum(axis=-1, keepdims=True).log() * z.transpose(0, 1)[1:, 0, :2].mean()).mean()

    out = expr(a, b, c)
    out.backward()
    z = (ta * tc - 1.5 / tb) ** 2 + (ta / tb).exp()
    t_out = (z.sum(dim=-1, keepdim=True).log() * z.transpose(0, 1)[1:, 0, :2].mean()).mean()
    t_out.backward()

    np.testing.assert_allclose(out.item(), t_out.item(), rtol=1e-14)
    for mine, theirs in [(a, ta), (b, tb), (c, tc)]:
        np.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-12, atol=ATOL)
