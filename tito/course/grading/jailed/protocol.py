"""The judge protocol: what crosses between the trusted judge and the student's process.

Messages are frames of JSON plus the raw bytes of plain numeric arrays (type and shape in
the JSON). Decoding builds arrays over the frame's bytes and never unpickles, so a hostile
peer can send wrong numbers but cannot run code in the reader.

Values are mirrored so that object identity holds on both sides: each side numbers the
arrays, tensors, lists and dicts it has shown the other (the judge uses even numbers, the
student's process odd ones), and sending an object the other side already knows updates
that object in place. In-place updates, rebinding `tensor.data` and buffers shared by
mistake therefore look the same on both sides.

This file runs on both sides of the jail and imports only the standard library and numpy;
the course's tensor class (settings.ini [package] tensor_class) is given to each Mirror.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import re
import select
import struct
import time

import numpy as np

MAX_MESSAGE_BYTES = (
    512 * 1024 * 1024
)  # what either side ever reads; the judge reads far less (judge.py)
# Array element types that may cross: booleans, integers, floats, complex numbers.
_DTYPE = re.compile(r"[<>|=]?[?bBiufc][0-9]{0,2}")


class WireError(Exception):
    """The peer sent something unreadable, went away, or did not answer in time."""


# An answer that has begun when its time runs out gets this long for the rest, and a second
# more per this many bytes its frame announces; once, with no overtime.
GRACE_SECONDS, GRACE_BYTES_PER_SECOND = 1.0, 64 << 20
_NO_MORE_TIME = object()


def _wait(fd: int, deadline: float | None, overtime=None, write: bool = False):
    """Wait until `fd` can be read (or written). Past `deadline`: if the peer is there, the
    grace (once); else `overtime()` gives a later deadline, or None: the time is up
    (TimeoutError). Returns the deadline and overtime in force."""
    ready = ([], [fd], []) if write else ([fd], [], [])
    if deadline is None:
        select.select(*ready)
        return None, None
    while True:
        remaining = deadline - time.monotonic()
        if remaining > 0 and any(select.select(*ready, remaining)):
            return deadline, overtime
        if overtime is _NO_MORE_TIME:
            raise TimeoutError("no answer before the time limit")
        if not any(select.select(*ready, 0)):  # the peer is not there: more time, or none
            deadline = overtime() if overtime is not None else None
            if deadline is not None:
                continue
        if any(select.select(*ready, 0)):  # it is there (before or during the look): the grace
            return time.monotonic() + GRACE_SECONDS, _NO_MORE_TIME
        raise TimeoutError("no answer before the time limit")


def _read_into(fd: int, buf: bytearray, deadline: float | None, overtime=None):
    view, got = memoryview(buf), 0
    while got < len(buf):
        graced = overtime is _NO_MORE_TIME
        deadline, overtime = _wait(fd, deadline, overtime)
        if overtime is _NO_MORE_TIME and not graced:  # its grace began: time for the rest
            deadline += (len(buf) - got) / GRACE_BYTES_PER_SECOND
        n = os.readv(fd, [view[got:]])
        if not n:
            raise WireError("the other process closed the connection")
        got += n
    return deadline, overtime


def send(
    fd: int, header: dict, arrays: list[np.ndarray], deadline: float | None = None, overtime=None
) -> int:
    """One frame: its length, the length of its JSON part, the JSON part, the arrays' raw bytes.
    Returns the frame's size in bytes. With a `deadline`, `fd` is non-blocking and a peer that
    stops reading raises TimeoutError (past `overtime()`, as in `receive`)."""
    arrays = [a if a.flags.c_contiguous else a.copy(order="C") for a in arrays]
    body = json.dumps({"h": header, "a": [[a.dtype.str, list(a.shape)] for a in arrays]}).encode()
    parts = [b"", struct.pack("<I", len(body)), body, *(memoryview(a).cast("B") for a in arrays)]
    parts[0] = struct.pack("<Q", sum(len(x) for x in parts[1:]))
    total, written = sum(len(x) for x in parts), 0
    while written < total:  # writev may write part of the frame when the pipe is full
        try:
            n = os.writev(fd, parts)
        except BlockingIOError:  # a non-blocking fd: wait until the peer reads
            deadline, overtime = _wait(fd, deadline, overtime, write=True)
            continue
        written += n
        while n:
            if n >= len(parts[0]):
                n -= len(parts[0])
                parts.pop(0)
            else:
                parts[0], n = memoryview(parts[0])[n:], 0
    return total


@functools.lru_cache(maxsize=64)
def _checked_dtype(name: str) -> np.dtype:
    if not _DTYPE.fullmatch(name):
        raise ValueError(f"array of type {name!r}")
    return np.dtype(name)


def _dtype(name) -> np.dtype:
    if not isinstance(name, str):
        raise ValueError(f"array of type {name!r}")
    return _checked_dtype(name)


def receive(
    fd: int, deadline: float | None = None, limit: int = MAX_MESSAGE_BYTES, overtime=None
) -> tuple[dict, list[np.ndarray]]:
    """The next frame's header and arrays (writable, no copies); never runs code from the frame.

    A frame longer than `limit` bytes is refused before anything of it is read or allocated.
    Past `deadline`, `overtime()` may give a later one (None: TimeoutError).
    """
    size = bytearray(8)
    deadline, overtime = _read_into(fd, size, deadline, overtime)
    (n,) = struct.unpack("<Q", size)
    if n > limit:
        raise WireError(f"a message of {n} bytes, more than the {limit} a valid one can need")
    if n < 4:
        raise WireError("message too short")
    if overtime is _NO_MORE_TIME:  # begun in its grace: time for the announced bytes, once
        deadline += n / GRACE_BYTES_PER_SECOND
    frame = bytearray(n)
    _read_into(fd, frame, deadline, overtime)
    (n_body,) = struct.unpack_from("<I", frame)
    try:
        body = json.loads(bytes(frame[4 : 4 + n_body]))
        header, table = body["h"], body["a"]
        if not isinstance(header, dict) or not isinstance(table, list):
            raise ValueError("not an object")
        arrays, offset = [], 4 + n_body
        for dtype, shape in table:
            dt = _dtype(dtype)
            if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
                raise ValueError(f"array of shape {shape!r}")
            count = math.prod(shape)
            if offset + count * dt.itemsize > n:
                raise ValueError("arrays longer than the message")
            arrays.append(np.frombuffer(frame, dt, count, offset).reshape(shape))
            offset += count * dt.itemsize
    except (ValueError, TypeError, KeyError) as e:
        raise WireError(f"unreadable message: {e}") from None
    return header, arrays


# -- mirroring ------------------------------------------------------------------

SCALARS = (type(None), bool, int, float, str)


def load_class(spec: str) -> type:
    """The class a "module:Class" names (the course's tensor class), imported now."""
    module, colon, name = spec.partition(":")
    if not (colon and module and name.isidentifier()):
        raise ValueError(f"{spec!r} is not module:Class")
    return getattr(importlib.import_module(module), name)


class Mirror:
    """Objects of `tensor_class` cross as their data and gradient arrays. `fixed_shapes` (the
    judge's side): a tensor's data and gradient keep their shape, whatever the other side
    rebinds them to; an array in place keeps its shape and dtype either way."""

    def __init__(self, parity: int, tensor_class: type, fixed_shapes: bool = False):
        self.tensor_class = tensor_class
        self.fixed_shapes = fixed_shapes
        self._next = 2 + parity
        self._ref_of: dict[int, int] = {}  # id(obj) -> ref
        self._obj_of: dict[int, object] = {}  # ref -> obj (keeps obj alive, so ids stay unique)

    def ref(self, obj) -> int:
        r = self._ref_of.get(id(obj))
        if r is None:
            r, self._next = self._next, self._next + 2
            self._ref_of[id(obj)] = r
            self._obj_of[r] = obj
        return r

    def _register(self, r: int, obj) -> None:
        old = self._obj_of.get(r)
        if old is not None:
            self._ref_of.pop(id(old), None)
        self._obj_of[r] = obj
        self._ref_of[id(obj)] = r

    # -- encoding ---------------------------------------------------------------
    def encode(self, v, arrays: list):
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, SCALARS):
            return v
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                raise TypeError("object arrays cannot cross to the grader")
            arrays.append(v)
            return {"nd": self.ref(v), "i": len(arrays) - 1, "w": bool(v.flags.writeable)}
        if isinstance(v, self.tensor_class):
            return {
                "tensor": self.ref(v),
                "data": self.encode(v.data, arrays),
                "grad": self.encode(v.grad, arrays),
                "rg": bool(v.requires_grad),
            }
        if isinstance(v, tuple):
            return {"tuple": [self.encode(x, arrays) for x in v]}
        if isinstance(v, list):
            return {"list": self.ref(v), "items": [self.encode(x, arrays) for x in v]}
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError("only dicts with str keys can cross to the grader")
            return {
                "dict": self.ref(v),
                "items": [[k, self.encode(x, arrays)] for k, x in v.items()],
            }
        raise TypeError(
            f"a {type(v).__name__} cannot cross to the grader "
            "(allowed: numbers, str, None, arrays, Tensors, tuples, lists, str-keyed dicts)"
        )

    # -- decoding ---------------------------------------------------------------
    def decode(self, e, arrays: list, seen: set | None = None):
        """Build (or update in place) the object `e` describes. With `seen` (the judge's side: one
        set for a whole message), a list or dict may occur once in the message: a container
        that holds itself, or one filled in after another took it twice, would make numpy's
        walk over the result endless or exponential, from a message of a few bytes."""
        if isinstance(e, SCALARS):
            return e
        if not isinstance(e, dict):
            raise ValueError("malformed value")
        if seen is not None and ("list" in e or "dict" in e):
            ref = e["list"] if "list" in e else e["dict"]
            if type(ref) is not int or ref in seen:
                raise ValueError("a list or dict occurs twice in one message, or inside itself")
            seen.add(ref)
        if "nd" in e:
            new = arrays[e["i"]]
            if not e.get("w", True):
                new.flags.writeable = False
            old = self._obj_of.get(e["nd"])
            if isinstance(old, np.ndarray) and old.shape == new.shape and old.dtype == new.dtype:
                if old.flags.writeable:
                    np.copyto(old, new)
                return old
            if isinstance(old, np.ndarray):
                raise ValueError(
                    f"an array changed shape or dtype in place: {old.shape} {old.dtype} -> "
                    f"{new.shape} {new.dtype}"
                )
            self._register(e["nd"], new)
            return new
        if "tensor" in e:
            data = self.decode(e["data"], arrays, seen)
            grad = self.decode(e["grad"], arrays, seen)
            if self.fixed_shapes and not (
                isinstance(data, np.ndarray) and (grad is None or isinstance(grad, np.ndarray))
            ):
                raise ValueError("a Tensor's data and gradient cross as arrays")
            t = self._obj_of.get(e["tensor"])
            if not isinstance(t, self.tensor_class):
                t = self.tensor_class(data, requires_grad=bool(e["rg"]))
                self._register(e["tensor"], t)
            elif self.fixed_shapes:
                self._check_shapes(t, data, grad)
            t.data = data
            t.grad = grad
            return t
        if "tuple" in e:
            return tuple(self.decode(x, arrays, seen) for x in e["tuple"])
        if "list" in e:
            items = [self.decode(x, arrays, seen) for x in e["items"]]
            lst = self._obj_of.get(e["list"])
            if not isinstance(lst, list):
                lst = []
                self._register(e["list"], lst)
            lst[:] = items
            return lst
        if "dict" in e:
            items = {str(k): self.decode(x, arrays, seen) for k, x in e["items"]}
            d = self._obj_of.get(e["dict"])
            if not isinstance(d, dict):
                d = {}
                self._register(e["dict"], d)
            d.clear()
            d.update(items)
            return d
        raise ValueError("malformed value")

    @staticmethod
    def _check_shapes(t, data, grad) -> None:
        shape = getattr(t.data, "shape", None)
        if not isinstance(data, np.ndarray) or data.shape != shape:
            raise ValueError(
                f"a Tensor's data was rebound to {_kind(data)}; it was an array of shape {shape}"
            )
        if grad is not None and (not isinstance(grad, np.ndarray) or grad.shape != shape):
            raise ValueError(
                f"a Tensor's grad was rebound to {_kind(grad)}; its data has shape {shape}"
            )


def _kind(v) -> str:
    return f"an array of shape {v.shape}" if isinstance(v, np.ndarray) else f"a {type(v).__name__}"
