"""The judge protocol: what crosses between the trusted judge and the student's process.

Messages are framed JSON plus .npy arrays. Decoding never unpickles (allow_pickle=False),
so a hostile peer can send wrong numbers but cannot run code in the reader.

Values are mirrored so that object identity holds on both sides: each side numbers the
arrays, tensors, lists and dicts it has shown the other (the judge uses even numbers, the
student's process odd ones), and sending an object the other side already knows updates
that object in place. In-place updates, rebinding `tensor.data` and buffers shared by
mistake therefore look the same on both sides.

This file runs on both sides of the jail and imports only the standard library, numpy and
the course's Tensor.
"""
from __future__ import annotations

import io
import json
import os
import select
import struct
import time

import numpy as np

from tinytorch.core.tensor import Tensor

MAX_MESSAGE_BYTES = 512 * 1024 * 1024


class WireError(Exception):
    """The peer sent something unreadable, went away, or did not answer in time."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, left = [], n
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer before the time limit")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise TimeoutError("no answer before the time limit")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise WireError("the other process closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def send(fd: int, header: dict, arrays: list[np.ndarray]) -> None:
    body = json.dumps(header).encode()
    parts = [struct.pack("<QI", len(body), len(arrays)), body]
    for a in arrays:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(a) if a.ndim else a, allow_pickle=False)
        blob = buf.getvalue()
        parts += [struct.pack("<Q", len(blob)), blob]
    _write_all(fd, b"".join(parts))


def receive(fd: int, deadline: float | None = None) -> tuple[dict, list[np.ndarray]]:
    n_body, n_arrays = struct.unpack("<QI", _read_exact(fd, 12, deadline))
    if n_body > MAX_MESSAGE_BYTES or n_arrays > 1_000_000:
        raise WireError("message too large")
    try:
        header = json.loads(_read_exact(fd, n_body, deadline))
    except ValueError as e:
        raise WireError(f"unreadable message: {e}") from None
    arrays, total = [], n_body
    for _ in range(n_arrays):
        (n,) = struct.unpack("<Q", _read_exact(fd, 8, deadline))
        total += n
        if total > MAX_MESSAGE_BYTES:
            raise WireError("message too large")
        try:
            arrays.append(np.lib.format.read_array(io.BytesIO(_read_exact(fd, n, deadline)), allow_pickle=False))
        except ValueError as e:
            raise WireError(f"unreadable array: {e}") from None
    if not isinstance(header, dict):
        raise WireError("unreadable message: not an object")
    return header, arrays


# -- mirroring ------------------------------------------------------------------

SCALARS = (type(None), bool, int, float, str)


class Mirror:
    def __init__(self, parity: int):
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
        if isinstance(v, Tensor):
            return {"tensor": self.ref(v), "data": self.encode(v.data, arrays),
                    "grad": self.encode(v.grad, arrays), "rg": bool(v.requires_grad)}
        if isinstance(v, tuple):
            return {"tuple": [self.encode(x, arrays) for x in v]}
        if isinstance(v, list):
            return {"list": self.ref(v), "items": [self.encode(x, arrays) for x in v]}
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError("only dicts with str keys can cross to the grader")
            return {"dict": self.ref(v), "items": [[k, self.encode(x, arrays)] for k, x in v.items()]}
        raise TypeError(f"a {type(v).__name__} cannot cross to the grader "
                        "(allowed: numbers, str, None, arrays, Tensors, tuples, lists, str-keyed dicts)")

    def reachable(self, v, out: list) -> list:
        """Mutable objects reachable from `v`, in a stable order (what a call may have changed)."""
        if isinstance(v, (np.ndarray, Tensor, list, dict)):
            if any(x is v for x in out):
                return out
            out.append(v)
        if isinstance(v, Tensor):
            self.reachable(v.data, out)
            self.reachable(v.grad, out)
        elif isinstance(v, (list, tuple)):
            for x in v:
                self.reachable(x, out)
        elif isinstance(v, dict):
            for x in v.values():
                self.reachable(x, out)
        return out

    # -- decoding ---------------------------------------------------------------
    def decode(self, e, arrays: list):
        """Build (or update in place) the object `e` describes."""
        if isinstance(e, SCALARS):
            return e
        if not isinstance(e, dict):
            raise ValueError("malformed value")
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
                raise ValueError(f"an array changed shape or dtype in place: {old.shape} {old.dtype} -> "
                                 f"{new.shape} {new.dtype}")
            self._register(e["nd"], new)
            return new
        if "tensor" in e:
            data = self.decode(e["data"], arrays)
            grad = self.decode(e["grad"], arrays)
            t = self._obj_of.get(e["tensor"])
            if not isinstance(t, Tensor):
                t = Tensor(data, requires_grad=bool(e["rg"]))
                self._register(e["tensor"], t)
            t.data = data
            t.grad = grad
            return t
        if "tuple" in e:
            return tuple(self.decode(x, arrays) for x in e["tuple"])
        if "list" in e:
            items = [self.decode(x, arrays) for x in e["items"]]
            lst = self._obj_of.get(e["list"])
            if not isinstance(lst, list):
                lst = []
                self._register(e["list"], lst)
            lst[:] = items
            return lst
        if "dict" in e:
            items = {str(k): self.decode(x, arrays) for k, x in e["items"]}
            d = self._obj_of.get(e["dict"])
            if not isinstance(d, dict):
                d = {}
                self._register(e["dict"], d)
            d.clear()
            d.update(items)
            return d
        raise ValueError("malformed value")
