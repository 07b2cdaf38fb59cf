"""The judge's wire under time limits (jailed/protocol.py), on real pipes: an answer that arrives
as the time runs out is taken, a peer that stops reading cannot hold a send, and one that
dribbles an answer gets a second for the rest, not more."""

from __future__ import annotations

import os
import struct
import threading
import time

import numpy as np
import pytest

from tito.course.grading.jailed.protocol import GRACE_SECONDS, receive, send


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def _later(seconds: float, action) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(seconds), action()))
    t.start()
    return t


def test_an_answer_that_arrives_while_the_time_runs_out_is_taken(pipe):
    """The last look at a starved call (here: 0.2 s, then "its time is up") does not read the
    pipe; an answer written meanwhile is still the call's."""
    r, w = pipe

    def last_look():
        time.sleep(0.2)
        return None

    writer = _later(0.15, lambda: send(w, {"ok": True}, [np.arange(3.0)]))
    header, arrays = receive(r, time.monotonic() + 0.05, overtime=last_look)
    writer.join()
    assert header == {"ok": True} and arrays[0].tolist() == [0.0, 1.0, 2.0]


def test_a_peer_that_stops_reading_cannot_hold_a_send(pipe):
    r, w = pipe
    os.set_blocking(w, False)
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        send(w, {"fn": "f"}, [np.zeros(1 << 20)], deadline=began + 0.3)  # 8 MB, a 64 KB pipe
    assert 0.3 <= time.monotonic() - began < 1.0


def test_an_answer_dribbled_after_its_time_gets_one_second_more_once(pipe):
    r, w = pipe
    # A frame of 1000 bytes announced, its first byte there when the time is up ...
    os.write(w, struct.pack("<Q", 1000) + b" ")
    stop = threading.Event()

    def dribble():  # ... and written a byte at a time, as fast as the reader takes them
        while not stop.wait(0.001):
            os.write(w, b" ")

    writer = threading.Thread(target=dribble)
    writer.start()
    began = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            receive(r, began, overtime=lambda: None)
    finally:
        stop.set()
        writer.join()
    assert GRACE_SECONDS <= time.monotonic() - began < GRACE_SECONDS + 0.5


def test_an_answer_waiting_in_the_pipe_at_the_deadline_is_read_without_looking_at_the_peer(pipe):
    """A peer blocked on a full pipe sleeps: the reader takes what is there instead of judging
    the peer (which would find it asleep and end the call)."""
    r, w = pipe
    looked = []
    writer = threading.Thread(target=send, args=(w, {"ok": True}, [np.zeros(1 << 18)]))
    writer.start()  # 2 MB: the writer waits on the pipe until it is read
    time.sleep(0.1)
    header, arrays = receive(r, time.monotonic() - 1, overtime=lambda: looked.append(1))
    writer.join()
    assert (header, arrays[0].shape, looked) == ({"ok": True}, (1 << 18,), [])
