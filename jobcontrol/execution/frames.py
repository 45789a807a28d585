"""Frames: how a build's process tells its runner what happens (log records, progress, the
outcome), as small ``marshal`` values, length-prefixed, over a pipe. Primitive values only:
the runner never unpickles or imports anything a job produced."""

from __future__ import annotations

import marshal
import os
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

from jobcontrol.serialize import safe_repr

#: a message from a running job: ("log", ...), ("progress", ...) or ("done", ...); and
#: from a warm worker, after its build: ("end", ...) (:mod:`jobcontrol.execution.pool`)
Frame = tuple[Any, ...]
Emit = Callable[[Frame], None]

_HEADER = struct.Struct("!I")


class FrameWriter:
    """Writes length-prefixed marshal frames to a pipe, whole, from any thread."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def __call__(self, frame: Frame) -> None:
        try:
            payload = marshal.dumps(frame)
        except ValueError:  # an unmarshallable value slipped in: send its text
            payload = marshal.dumps(tuple(x if isinstance(x, (str, int, float, type(None)))
                                          else safe_repr(x) for x in frame))
        data = _HEADER.pack(len(payload)) + payload
        with self._lock:
            self._write(data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def last(self, *frames: Frame) -> None:
        """Send ``frames`` as the build's last, in one write (the reader wakes once): a
        thread the build left running that logs later gets ``EBADF``, never a place in the
        next build's frames (a warm worker's frame pipe outlives its builds)."""
        data = b"".join(_HEADER.pack(len(payload)) + payload
                        for payload in map(marshal.dumps, frames))
        with self._lock:
            try:
                self._write(data)
            finally:
                self._fd = -1


class FrameReader:
    """Splits bytes read from the frame pipe back into frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Frame]:
        self._buffer += data
        buffer = self._buffer
        pos = 0
        size = _HEADER.size
        while len(buffer) - pos >= size:
            (length,) = _HEADER.unpack_from(buffer, pos)
            if len(buffer) - pos - size < length:
                break
            yield marshal.loads(bytes(buffer[pos + size:pos + size + length]))
            pos += size + length
        del buffer[:pos]
