"""End-to-end: small models built from tinytorch.core.tensor, trained by plain gradient descent.

The update is written out here (p.data -= lr * p.grad) so the tests depend on nothing but the
tensor module.
"""

import numpy as np

from tinytorch.core.tensor import Linear, Sequential, Tensor, cross_entropy, mse_loss, no_grad


def gradient_descent(model, loss_fn, steps, lr):
    losses = []
    for _ in range(steps):
        model.zero_grad()
        loss = loss_fn()
        loss.backward()
        losses.append(loss.item())
        with no_grad():
            for p in model.parameters():
                p.data -= lr * p.grad
    return losses


def test_two_layer_mlp_learns_the_quadrant_problem():
    # Label 1 in the first and third quadrants: not linearly separable, so the hidden layer matters.
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(256, 2)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    model = Sequential(Linear(2, 16, rng=rng), Tensor.relu, Linear(16, 2, rng=rng))
    params_before = [p.data for p in model.parameters()]

    losses = gradient_descent(model, lambda: cross_entropy(model(Tensor(X)), y), steps=400, lr=0.5)

    with no_grad():
        accuracy = (model(Tensor(X)).data.argmax(axis=1) == y).mean()
    assert accuracy > 0.9, f"accuracy {accuracy:.3f} after 400 steps"
    assert losses[-1] < 0.5 * losses[0]
    # The updates were in place: every parameter is still the array it started as, in float32.
    assert all(
        p.data is a and p.data.dtype == np.float32
        for p, a in zip(model.parameters(), params_before)
    )


def test_linear_regression_converges_to_least_squares():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 3))
    y = X @ np.array([[1.5], [-2.0], [0.5]]) + 0.25 + 0.1 * rng.normal(size=(64, 1))
    model = Linear(3, 1, rng=rng, dtype=np.float64)

    gradient_descent(model, lambda: mse_loss(model(Tensor(X)), y), steps=500, lr=0.2)

    design = np.hstack([X, np.ones((64, 1))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    np.testing.assert_allclose(model.weight.data, solution[:3].T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.bias.data, solution[3], rtol=0, atol=1e-10)
