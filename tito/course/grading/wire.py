"""Framed messages between the judge and the student's process: JSON plus .npy arrays.

Decoding never unpickles (allow_pickle=False), so a hostile peer can send wrong numbers
but cannot run code in the reader.
"""
from __future__ import annotations

import io
import json
import os
import select
import struct
import time

import numpy as np

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
