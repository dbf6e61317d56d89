"""Raw non-blocking socket I/O on trio for the HTTP server and client and the SMPP link.

Owns: ``sock_recv``, ``sock_recv_reply``, ``sock_send_all``, ``sock_close`` and
``open_socket`` (a connected non-blocking TCP socket with TCP_NODELAY).

Rules: stdlib non-blocking sockets driven through trio.lowlevel directly: the same
checkpoint semantics as trio.SocketStream (a cancellation point on every call, a yield
even when data is ready) at a fraction of its per-call cost; ``sock_send_all`` does not
yield when the kernel takes the whole buffer (the caller's next receive does).
Errors surface as OSError or trio.ClosedResourceError; nothing here retries.
"""

from __future__ import annotations

import os
import socket

import trio

__all__ = ["sock_recv", "sock_recv_reply", "sock_send_all", "sock_close", "open_socket"]


async def sock_recv(sock: socket.socket, n: int) -> bytes:
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        data = sock.recv(n)
    except BlockingIOError:
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                return sock.recv(n)
            except BlockingIOError:
                pass
    await trio.lowlevel.cancel_shielded_checkpoint()
    return data


async def sock_recv_reply(sock: socket.socket, n: int) -> bytes:
    """``sock_recv`` right after sending something the peer answers: waits for
    readability first instead of trying a recv that would almost surely fail with
    EAGAIN (one syscall less per request/response; the same checkpoint semantics)."""
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            return sock.recv(n)
        except BlockingIOError:
            pass


async def sock_send_all(sock: socket.socket, data: bytes) -> None:
    """Send everything. A cancellation point, but when the kernel takes the whole
    buffer at once it does not yield: every caller's loop yields in sock_recv next,
    which saves one scheduler round per request/response."""
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return
    view = memoryview(data)[sent:]
    while view:
        await trio.lowlevel.wait_writable(sock)
        try:
            view = view[sock.send(view):]
        except BlockingIOError:
            pass


def sock_close(sock: socket.socket) -> None:
    """Close, waking any task blocked on this socket (it gets ClosedResourceError)."""
    if sock.fileno() >= 0:
        trio.lowlevel.notify_closing(sock)
        sock.close()


async def open_socket(family: int, sockaddr) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect(sockaddr)
        except BlockingIOError:
            pass
        await trio.lowlevel.wait_writable(sock)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
        return sock
    except BaseException:
        sock_close(sock)
        raise
