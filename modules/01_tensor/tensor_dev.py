# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 01: Tensors and reverse-mode autograd
#
# This module is **provided**: the code is complete and carries no points. Read it,
# run it, and change the small examples to see what happens. Every later module
# builds on the pieces defined here:
#
# - `Tensor`: a numpy array plus the bookkeeping that lets it compute gradients;
# - `Parameter`, `Module`, `Linear`, `Sequential`: enough to write a small network;
# - `mse_loss` and `cross_entropy`: the two losses the course trains with;
# - `no_grad()`: a switch that turns the bookkeeping off.
#
# The whole engine fits on a few screens, in the spirit of micrograd: each operation
# computes its result with numpy and records a small closure that knows how to send
# a gradient back to its inputs.

# %%
#| default_exp core.tensor

# %%
#| export
import contextlib
import numbers

import numpy as np

# %% [markdown]
# ## Part 1: What a tensor holds
#
# A `Tensor` wraps one `numpy.ndarray`, always available as `.data`. Our dtype rules
# follow PyTorch's:
#
# - a floating ndarray keeps its dtype (`float64` stays `float64`), and the tensor
#   shares its memory: no copy is made;
# - Python numbers and lists become `float32`, PyTorch's default;
# - integer and boolean ndarrays are allowed (class labels, masks) but cannot
#   require gradients: a derivative with respect to an integer is meaningless.
#
# A tensor with `requires_grad=True` is a *leaf* we want gradients for (a weight).
# Its `.grad` is `None` until a backward pass reaches it; afterwards it is an ndarray
# of the same shape and dtype as `.data`. Results of operations remember the tensors
# they came from (`_parents`) and how to push a gradient back to them (`_backward`).
#
# ## Part 2: Reverse-mode autograd
#
# Suppose a scalar loss $L$ is computed from $x$ through intermediate values
# $y = f(x)$. The chain rule says
#
# $$\frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}\,\frac{\partial y}{\partial x}.$$
#
# Reverse mode evaluates this right to left. Starting from $\partial L/\partial L = 1$,
# every operation receives the gradient of $L$ with respect to its *output* (the
# upstream gradient $g$) and returns the gradient with respect to each *input*. For
# example, for $z = x \cdot y$ it returns $(g\,y,\; g\,x)$; for $z = e^x$ it returns
# $g\,e^x$. When a value feeds several operations, the contributions are **added**
# (a sum over paths in the chain rule).
#
# To process a node only after every node that uses it, `backward()` walks the graph
# in reverse *topological order*. Only leaves keep their gradient in `.grad`, and they
# accumulate it with `+=`, exactly like PyTorch: call `grad = None` (or an optimizer's
# `zero_grad()`) between steps.
#
# ## Part 3: Broadcasting and its gradient
#
# numpy broadcasting stretches a `(3,)` bias across a `(4, 3)` batch. The bias was
# used four times, so its gradient is the sum of the four rows of upstream gradient.
# In general, a gradient has to be summed over every axis that broadcasting created
# or stretched. One helper does this for every operation, so no operation needs to
# think about broadcasting itself:

# %%
#| export
def _unbroadcast(grad, shape):
    "Sum `grad` down to `shape`, undoing numpy broadcasting."
    while grad.ndim > len(shape):  # axes that broadcasting added in front
        grad = grad.sum(axis=0)
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


def _topo_order(root):
    "Nodes that need a gradient, each listed after all of its parents (iterative DFS)."
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in visited:
            visited.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._parents if p.requires_grad)
    return order


def _as_array(data):
    "The ndarray a Tensor stores for `data`, following PyTorch's dtype rules."
    if isinstance(data, Tensor):
        return data.data
    arr = np.asarray(data)
    if not isinstance(data, (np.ndarray, np.generic)) and arr.dtype.kind in "biuf":
        arr = arr.astype(np.float32)  # Python numbers and lists: float32, as in PyTorch
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"Tensor data must be numeric (bool, integer or floating); "
            f"got {type(data).__name__} with dtype {arr.dtype}"
        )
    return arr

# %% [markdown]
# Two quick checks of `_unbroadcast`: a bias of shape `(3,)` added to a `(4, 3)`
# batch receives the column sums, and a `(4, 1)` column receives the row sums.

# %%
g = np.arange(12.0).reshape(4, 3)
assert np.array_equal(_unbroadcast(g, (3,)), [18.0, 22.0, 26.0])
assert np.array_equal(_unbroadcast(g, (4, 1)), [[3.0], [12.0], [21.0], [30.0]])
assert _unbroadcast(g, (4, 3)) is g

# %% [markdown]
# ## Part 4: The `Tensor` class
#
# Every operation follows one pattern: compute the output with numpy, then call
# `_result(out, parents, backward)` where `backward(g)` returns one gradient per
# parent. `_result` records the graph only when some parent requires a gradient
# and recording is enabled (see `no_grad` below).
#
# The local derivatives used below, with $g$ the upstream gradient:
#
# | operation | gradient to the inputs |
# |---|---|
# | $a + b$, $a - b$ | $g$, $\pm g$ |
# | $a \cdot b$ | $g\,b$, $g\,a$ |
# | $a / b$ | $g / b$, $-g\,a / b^2$ |
# | $a^p$ ($p$ a number) | $g\,p\,a^{p-1}$ |
# | $A B$ (matmul) | $g B^\top$, $A^\top g$ |
# | $e^a$, $\log a$ | $g\,e^a$, $g / a$ |
# | $\mathrm{relu}(a)$ | $g\,[a > 0]$ |
# | $\sigma(a)$, $\tanh a$ | $g\,\sigma(a)(1-\sigma(a))$, $g\,(1 - \tanh^2 a)$ |
# | sum, reshape, transpose, indexing | $g$ spread back to the input's positions |

# %%
#| export
_grad_enabled = True  # switched off inside `no_grad()`


class Tensor:
    "A numpy array that can record the operations applied to it and backpropagate through them."

    # Makes numpy hand `ndarray + Tensor` to Tensor.__radd__ instead of looping over elements.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False):
        self.data = _as_array(data)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating tensors can require gradients; got dtype {self.data.dtype}. "
                "Convert the data first, e.g. data.astype(np.float32)"
            )
        self.requires_grad = bool(requires_grad)
        self._grad = None
        self._parents = ()
        self._backward = None  # None for leaves

    # ----- basic information -----
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    def numpy(self):
        "The underlying ndarray itself (not a copy)."
        return self.data

    def item(self):
        "The value of a one-element tensor as a Python number."
        return self.data.item()

    def detach(self):
        "A new leaf that shares this tensor's data but records no history."
        return Tensor(self.data)

    def __repr__(self):
        name = type(self).__name__
        parts = [np.array2string(self.data, separator=", ", prefix=name + "(")]
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype}")
        if self.requires_grad:
            parts.append("requires_grad=True")
        return f"{name}({', '.join(parts)})"

    # ----- the gradient -----
    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        "Accept None, or an array of this tensor's shape; numbers are cast to this tensor's dtype."
        if value is None:
            self._grad = None
            return
        value = _as_array(value) if isinstance(value, Tensor) else np.asarray(value)
        if self.dtype.kind != "f" or value.dtype.kind not in "biuf":
            raise TypeError(f"cannot assign a gradient of dtype {value.dtype} to a tensor of "
                            f"dtype {self.dtype}")
        if value.shape != self.shape:
            raise ValueError(f"gradient shape {value.shape} does not match tensor shape "
                             f"{self.shape}")
        self._grad = value.astype(self.dtype, copy=False)

    def _accumulate(self, g):
        if self._grad is None:
            self._grad = np.array(g, dtype=self.dtype)  # a copy: `g` may be shared with other nodes
        else:
            self._grad += g

    def backward(self, gradient=None):
        "Add d(self)/d(leaf) to `.grad` of every leaf this tensor depends on."
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad")
        if gradient is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element output; this output has "
                    f"shape {self.shape}. Reduce it (e.g. .sum()) or pass gradient=..."
                )
            gradient = np.ones_like(self.data)
        else:
            gradient = np.asarray(_as_array(gradient), dtype=self.dtype)
            if gradient.shape != self.shape:
                raise ValueError(f"gradient shape {gradient.shape} does not match output shape "
                                 f"{self.shape}")

        grads = {id(self): gradient}
        for node in reversed(_topo_order(self)):
            g = grads.pop(id(node))
            if node._backward is None:
                node._accumulate(g)
                continue
            for parent, pg in zip(node._parents, node._backward(g)):
                if parent.requires_grad:
                    pg = _unbroadcast(pg, parent.shape)
                    key = id(parent)
                    grads[key] = grads[key] + pg if key in grads else pg

    # ----- building the graph -----
    @staticmethod
    def _result(data, parents, backward):
        out = Tensor(data)
        if _grad_enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents, out._backward = parents, backward
        return out

    def _lift(self, other):
        "Wrap an operand; a Python or numpy number takes this tensor's floating dtype (PyTorch's)."
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Real) and self.dtype.kind == "f":
            return Tensor(np.asarray(other, dtype=self.dtype))
        return Tensor(other)

    # ----- elementwise arithmetic -----
    def __add__(self, other):
        other = self._lift(other)
        return self._result(self.data + other.data, (self, other), lambda g: (g, g))

    def __sub__(self, other):
        other = self._lift(other)
        return self._result(self.data - other.data, (self, other), lambda g: (g, -g))

    def __mul__(self, other):
        other = self._lift(other)
        a, b = self.data, other.data
        return self._result(a * b, (self, other), lambda g: (g * b, g * a))

    def __truediv__(self, other):
        other = self._lift(other)
        a, b = self.data, other.data
        return self._result(a / b, (self, other), lambda g: (g / b, -g * a / (b * b)))

    def __radd__(self, other):
        return self._lift(other) + self

    def __rsub__(self, other):
        return self._lift(other) - self

    def __rmul__(self, other):
        return self._lift(other) * self

    def __rtruediv__(self, other):
        return self._lift(other) / self

    def __neg__(self):
        return self._result(-self.data, (self,), lambda g: (-g,))

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or not isinstance(exponent, numbers.Real):
            raise TypeError(f"only a number can be an exponent; got {type(exponent).__name__}")
        # A Python number keeps the tensor's dtype (a numpy float64 scalar would promote float32).
        p = int(exponent) if isinstance(exponent, numbers.Integral) else float(exponent)
        a = self.data

        def backward(g):
            # p == 0 is a constant: avoid 0 * a**-1 = nan at a == 0
            return (g * p * a ** (p - 1) if p != 0 else np.zeros_like(g),)

        return self._result(a**p, (self,), backward)

    # ----- matrix product -----
    def __matmul__(self, other):
        other = self._lift(other)
        a, b = self.data, other.data
        try:
            out = a @ b
        except ValueError:
            raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}") from None

        def backward(g):
            # Treat 1-D operands as a row (left) or a column (right), as numpy does.
            a2 = a[None, :] if a.ndim == 1 else a
            b2 = b[:, None] if b.ndim == 1 else b
            if b.ndim == 1:
                g = np.expand_dims(g, -1)
            if a.ndim == 1:
                g = np.expand_dims(g, -2)
            ga = g @ np.swapaxes(b2, -1, -2)
            gb = np.swapaxes(a2, -1, -2) @ g
            return (_unbroadcast(ga, a2.shape).reshape(a.shape),
                    _unbroadcast(gb, b2.shape).reshape(b.shape))

        return self._result(out, (self, other), backward)

    def __rmatmul__(self, other):
        return self._lift(other) @ self

    # ----- reductions -----
    def sum(self, axis=None, keepdims=False):
        shape = self.shape

        def backward(g):
            if axis is not None and not keepdims:
                axes = axis if isinstance(axis, tuple) else (axis,)
                g = np.expand_dims(g, tuple(ax % len(shape) for ax in axes))
            return (np.broadcast_to(g, shape),)

        return self._result(self.data.sum(axis=axis, keepdims=keepdims), (self,), backward)

    def mean(self, axis=None, keepdims=False):
        total = self.sum(axis=axis, keepdims=keepdims)
        return total * (total.size / self.size)

    # ----- elementwise functions -----
    def exp(self):
        out = np.exp(self.data)
        return self._result(out, (self,), lambda g: (g * out,))

    def log(self):
        a = self.data
        return self._result(np.log(a), (self,), lambda g: (g / a,))

    def relu(self):
        a = self.data
        return self._result(np.maximum(a, 0), (self,), lambda g: (g * (a > 0),))

    def sigmoid(self):
        # 1 / (1 + e^-x) written with tanh: no overflow warning for large negative x
        out = 0.5 * (np.tanh(0.5 * self.data) + 1)
        return self._result(out, (self,), lambda g: (g * out * (1 - out),))

    def tanh(self):
        out = np.tanh(self.data)
        return self._result(out, (self,), lambda g: (g * (1 - out * out),))

    # ----- shape -----
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        old = self.shape
        return self._result(self.data.reshape(shape), (self,), lambda g: (g.reshape(old),))

    def permute(self, *dims):
        "Reorder the axes: output axis i is input axis dims[i]."
        inverse = np.argsort(dims)
        return self._result(self.data.transpose(dims), (self,), lambda g: (g.transpose(inverse),))

    def transpose(self, dim0, dim1):
        "Swap two axes (PyTorch's transpose, not numpy's)."
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    @property
    def T(self):
        "All axes reversed; the usual transpose for a matrix."
        return self.permute(*reversed(range(self.ndim)))

    def __getitem__(self, index):
        index = index.data if isinstance(index, Tensor) else index
        a = self.data

        def backward(g):
            full = np.zeros_like(a, dtype=g.dtype)
            np.add.at(full, index, g)  # add.at: a repeated index collects every contribution
            return (full,)

        return self._result(a[index], (self,), backward)

# %% [markdown]
# ### Examples with hand-computed values
#
# $f(x, y) = x y + y^2$ at $x = 3, y = 2$: $\partial f/\partial x = y = 2$ and
# $\partial f/\partial y = x + 2y = 7$. The variable $y$ is used twice, so its two
# contributions (3 and 4) are added.

# %%
x = Tensor(3.0, requires_grad=True)
y = Tensor(2.0, requires_grad=True)
f = x * y + y**2
f.backward()
assert f.item() == 10.0
assert x.grad == 2.0 and y.grad == 7.0
assert x.grad.dtype == np.float32 and x.grad.shape == ()

# A second backward pass adds to the stored gradients, as in PyTorch.
(x * y + y**2).backward()
assert x.grad == 4.0 and y.grad == 14.0

# %% [markdown]
# A bias broadcast over a batch of 4 rows receives 4 times the upstream gradient of
# each row; a matrix product sends $g B^\top$ to the left operand.

# %%
b = Tensor(np.zeros(3), requires_grad=True)  # float64 stays float64
X = Tensor(np.ones((4, 3)))
(X + b).sum().backward()
assert np.array_equal(b.grad, [4.0, 4.0, 4.0]) and b.grad.dtype == np.float64

A = Tensor([[1.0, 2.0]], requires_grad=True)
B = Tensor([[3.0], [4.0]])
(A @ B).backward()
assert np.array_equal(A.grad, [[3.0, 4.0]])

# %% [markdown]
# Wrong shapes fail loudly instead of broadcasting into a silent mistake:

# %%
try:
    Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3)))
except ValueError as e:
    assert "(2, 3) @ (2, 3)" in str(e)
else:
    raise AssertionError("matmul of mismatched shapes did not raise")

# %% [markdown]
# ### Checking gradients numerically
#
# A central difference approximates a derivative with error $O(h^2)$:
#
# $$\frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h}.$$
#
# In float64 with $h = 10^{-6}$ it agrees with an exact gradient to about $10^{-8}$,
# which makes it the standard test for a backward pass (the test suite checks every
# operation this way).

# %%
rng = np.random.default_rng(0)
x0 = rng.normal(size=(2, 3))
fn = lambda t: ((t.tanh() * t).exp() / (1 + t**2)).sum()

t = Tensor(x0, requires_grad=True)
fn(t).backward()
numeric = np.zeros_like(x0)
for i in np.ndindex(x0.shape):
    e = np.zeros_like(x0)
    e[i] = 1e-6
    numeric[i] = (fn(Tensor(x0 + e)).item() - fn(Tensor(x0 - e)).item()) / 2e-6
assert np.allclose(t.grad, numeric, rtol=1e-6, atol=1e-8)

# %% [markdown]
# ## Part 5: Turning the recording off
#
# Updating weights, or evaluating a model on test data, needs no graph. Inside
# `with no_grad():` results never require gradients, so no closures are kept.

# %%
#| export
@contextlib.contextmanager
def no_grad():
    "Within this block, operations record no graph and their results do not require grad."
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous

# %%
w = Tensor([1.0, 2.0], requires_grad=True)
with no_grad():
    assert not (w * 2).requires_grad
assert (w * 2).requires_grad

# %% [markdown]
# ## Part 6: Losses
#
# **Mean squared error** over all $n$ elements: $\ell = \frac{1}{n}\sum_i (\hat y_i - y_i)^2$.
# The two shapes must match exactly: a `(N, 1)` prediction against a `(N,)` target
# would otherwise broadcast to `(N, N)` and train on nonsense.
#
# **Cross-entropy** for logits $z \in \mathbb{R}^{N \times C}$ and integer labels
# $y_n \in \{0, \dots, C-1\}$ is the mean negative log-probability of the right class:
#
# $$\ell = -\frac{1}{N}\sum_n \log \operatorname{softmax}(z_n)_{y_n},\qquad
# \log\operatorname{softmax}(z)_c = (z_c - m) - \log\sum_k e^{z_k - m}.$$
#
# Subtracting the row maximum $m$ changes nothing mathematically but keeps every
# exponent $\le 0$, so `exp` cannot overflow. Since the result does not depend on
# $m$, the maximum is treated as a constant (no gradient flows through it).

# %%
#| export
def mse_loss(pred, target):
    "Mean of the squared differences; `pred` and `target` must have the same shape."
    target = pred._lift(target)
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: pred shape {pred.shape} and target shape {target.shape} "
                         "differ")
    return ((pred - target) ** 2).mean()


def cross_entropy(logits, labels):
    "Mean cross-entropy of (N, C) logits against N integer class labels."
    labels = _as_array(labels) if isinstance(labels, Tensor) else np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (N, C); got {logits.shape}")
    n, c = logits.shape
    if labels.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy expects integer class labels; got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"cross_entropy: labels shape {labels.shape} does not match {n} rows "
                         "of logits")
    if n and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(f"cross_entropy: labels must lie in [0, {c}); got values from "
                         f"{labels.min()} to {labels.max()}")
    shifted = logits - logits.data.max(axis=1, keepdims=True)
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    return -log_probs[np.arange(n), labels].mean()

# %% [markdown]
# Hand-computed values: equal logits give probability $1/C$, so the loss is
# $\log C$; and one sample with prediction 3 and target 1 has squared error 4.

# %%
z = Tensor(np.zeros((2, 4)), requires_grad=True)
loss = cross_entropy(z, [1, 3])
assert np.isclose(loss.item(), np.log(4))
loss.backward()
# gradient (softmax - onehot) / N: 1/8 everywhere, minus 1/2 at each label
assert np.allclose(z.grad, [[0.125, -0.375, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]])

assert mse_loss(Tensor([3.0]), Tensor([1.0])).item() == 4.0
# Huge logits do not overflow.
assert np.isclose(cross_entropy(Tensor([[1000.0, 0.0]]), [0]).item(), 0.0)

# %% [markdown]
# ## Part 7: Parameters and layers
#
# A `Parameter` is a tensor that always requires a gradient: the weights of a model.
# A `Module` finds its parameters by looking through its attributes (parameters,
# sub-modules, and lists of either), in the order they were assigned, so an
# optimizer can be given `model.parameters()`.
#
# `Linear` computes $y = x W^\top + b$ with `weight` of shape `(out_features,
# in_features)`, PyTorch's layout. Its weights use He initialisation,
# $W_{ij} \sim \mathcal{N}(0, 2 / \text{in\_features})$, which keeps the scale of
# activations roughly constant through ReLU layers; the bias starts at zero. The
# random numbers come from a `numpy.random.Generator` you pass in, so runs are
# reproducible.

# %%
#| export
class Parameter(Tensor):
    "A tensor that is a trainable weight: it always requires a gradient."

    def __init__(self, data):
        super().__init__(data, requires_grad=True)


class Module:
    "Base class for layers and models; `parameters()` walks the attributes."

    def __call__(self, *args):
        return self.forward(*args)

    def parameters(self):
        "Every Parameter reachable through attributes, sub-modules and lists, each once."
        found, seen = [], set()

        def walk(obj):
            if isinstance(obj, Parameter):
                if id(obj) not in seen:
                    seen.add(id(obj))
                    found.append(obj)
            elif isinstance(obj, Module):
                for value in vars(obj).values():
                    walk(value)
            elif isinstance(obj, (list, tuple)):
                for value in obj:
                    walk(value)

        walk(self)
        return found

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None


class Linear(Module):
    "y = x @ weight.T + bias, with weight of shape (out_features, in_features)."

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear needs positive sizes; got in_features={in_features}, "
                             f"out_features={out_features}")
        rng = np.random.default_rng() if rng is None else rng
        std = np.sqrt(2.0 / in_features)  # He initialisation
        weight = rng.normal(0.0, std, size=(out_features, in_features))
        self.weight = Parameter(weight.astype(dtype))
        self.bias = Parameter(np.zeros(out_features, dtype=dtype)) if bias else None

    def forward(self, x):
        out = x @ self.weight.T
        return out if self.bias is None else out + self.bias


class Sequential(Module):
    "Apply layers (Modules or plain functions such as Tensor.relu) one after another."

    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

# %% [markdown]
# A two-layer network in three lines, with its parameters in a predictable order:

# %%
rng = np.random.default_rng(0)
model = Sequential(Linear(2, 8, rng=rng), Tensor.relu, Linear(8, 3, rng=rng))
params = model.parameters()
assert [p.shape for p in params] == [(8, 2), (8,), (3, 8), (3,)]
assert model(Tensor(np.ones((5, 2), dtype=np.float32))).shape == (5, 3)

# %% [markdown]
# ## Part 8: Putting it together
#
# Plain gradient descent, $\theta \leftarrow \theta - \eta\,\nabla_\theta \ell$, on
# points labelled by the quadrant they fall in (not linearly separable, so the hidden
# layer is needed). The update changes each parameter's array in place, which is what
# the optimizers of module 06 will do.

# %%
rng = np.random.default_rng(1)
X = rng.uniform(-1, 1, size=(200, 2)).astype(np.float32)
y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
model = Sequential(Linear(2, 16, rng=rng), Tensor.relu, Linear(16, 2, rng=rng))

for step in range(300):
    model.zero_grad()
    loss = cross_entropy(model(Tensor(X)), y)
    loss.backward()
    with no_grad():
        for p in model.parameters():
            p.data -= 0.5 * p.grad

with no_grad():
    accuracy = (model(Tensor(X)).data.argmax(axis=1) == y).mean()
assert accuracy > 0.9, f"training reached only {accuracy:.2f} accuracy"
