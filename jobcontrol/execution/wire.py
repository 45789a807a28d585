"""The wire between a runner and the processes it keeps warm (the fork server, the pool's
workers): length-prefixed pickles over a Unix socket, and for the fork server file
descriptors (a build's pipe ends) passed with the header (``SCM_RIGHTS``; a pool worker
keeps its pipes, and is sent none)."""

from __future__ import annotations

import array
import pickle
import socket
import struct
from typing import Any

HEADER = struct.Struct("!I")
#: the most descriptors one message carries (a build's frame, stdout and stderr pipes)
MAX_FDS = 3


def send(sock: socket.socket, message: Any, fds: tuple[int, ...] = ()) -> None:
    send_raw(sock, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL), fds)


def send_raw(sock: socket.socket, payload: bytes, fds: tuple[int, ...] | list[int] = ()
             ) -> None:
    # one sendmsg for header, payload and descriptors: the reader wakes up once
    header = HEADER.pack(len(payload))
    ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sent = sock.sendmsg([header, payload], ancdata)
    rest = len(header) + len(payload) - sent
    if rest:  # a stream socket may take less at once (a signal, a large payload)
        sock.sendall(memoryview(header + payload)[sent:] if sent < len(header)
                     else memoryview(payload)[sent - len(header):])


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket) -> tuple[Any, list[int]]:
    payload, fds = recv_raw(sock)
    return pickle.loads(payload), fds


def recv_raw(sock: socket.socket) -> tuple[bytes, list[int]]:
    """One message and the descriptors that came with it; EOFError at the end."""
    fds = array.array("i")
    header, ancdata, _, _ = sock.recvmsg(HEADER.size, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if not header:
        raise EOFError("connection closed")
    if len(header) < HEADER.size:
        header += _recv_exactly(sock, HEADER.size - len(header))
    (length,) = HEADER.unpack(header)
    return _recv_exactly(sock, length), list(fds)
