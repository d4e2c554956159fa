"""A QUIC bidirectional stream with asyncio's stream interface.

Reading grants the peer credit (``swarm.control.Credit``) as the app consumes data,
so a slow reader holds back a fast writer instead of buffering without bound: at
most one window of unread bytes per stream (small at first, grown for fast readers).
Writing hands bytes to QUIC only within the peer's credit; the rest waits here and
``drain()`` blocks while it is large.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from storage.errors import InvalidArgumentError
from swarm.errors import ConnectionClosedError, StreamResetError

ITER_CHUNK = 256 * 1024


class StreamHost(Protocol):
    """What a stream needs from its connection (implemented by ``Connection``)."""

    def _flush_stream(self, stream: Stream) -> None: ...

    def _grant_credit(self, stream_id: int, limit: int) -> None: ...

    def _stop_receiving(self, stream_id: int) -> None: ...

    def _reset_sending(self, stream_id: int) -> None: ...

    def _forget_stream(self, stream: Stream) -> None: ...

    def _rtt_estimate(self) -> float: ...


class Stream:
    """One ordered, reliable, flow-controlled byte stream in each direction."""

    def __init__(
        self,
        host: StreamHost,
        stream_id: int,
        *,
        protocol: bytes = b"",
        window: int,
        max_window: int,
        send_limit: int,
        high_water: int,
    ) -> None:
        self._host = host
        self._id = stream_id
        self.protocol = protocol
        self._loop = asyncio.get_running_loop()
        # receive side
        self._window = window
        self._max_window = max(window, max_window)
        self._last_grant = self._loop.time()
        self._granted = window  # absolute offset the peer may send up to
        self._received = 0
        self._consumed = 0
        self._in: deque[bytes] = deque()
        self._in_len = 0
        self._eof = False
        self._read_error: ConnectionClosedError | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._reading_stopped = False
        self._peer_finished = False  # FIN or RESET_STREAM received: nothing more will come
        # send side
        self._send_limit = send_limit
        self._sent = 0
        self._out: deque[bytes] = deque()
        self._out_len = 0
        self._high_water = high_water
        self._eof_requested = False
        self._fin_sent = False
        self._write_error: ConnectionClosedError | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closing = False
        self._closed = asyncio.Event()

    @property
    def stream_id(self) -> int:
        return self._id

    # -- reading ---------------------------------------------------------------

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all until EOF when ``n`` < 0); ``b""`` at EOF."""
        if n == 0:
            return b""
        if n < 0:
            parts = []
            while chunk := await self.read(ITER_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        while not self._in:
            if self._read_error is not None:
                raise self._read_error
            if self._eof:
                return b""
            await self._wait_readable()
        return self._take(n)

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or :class:`asyncio.IncompleteReadError` at an early EOF."""
        if n < 0:
            raise InvalidArgumentError("readexactly size must be >= 0")
        while self._in_len < n:
            if self._read_error is not None:
                raise self._read_error
            if self._eof:
                partial = self._take(self._in_len)
                raise asyncio.IncompleteReadError(partial, n)
            self._credit_for(n)
            await self._wait_readable()
        return self._take(n)

    def _credit_for(self, n: int) -> None:
        """Let the peer send ``n`` unread bytes, even past the window: the app asked."""
        if not self._eof and not self._reading_stopped and self._consumed + n > self._granted:
            self._granted = self._consumed + n
            self._host._grant_credit(self._id, self._granted)

    def at_eof(self) -> bool:
        """True once the peer's FIN arrived and every byte before it was read."""
        return self._eof and not self._in

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.read(ITER_CHUNK):
            yield chunk

    async def _wait_readable(self) -> None:
        if self._read_waiter is not None:
            raise RuntimeError("another coroutine is already reading this stream")
        self._read_waiter = self._loop.create_future()
        try:
            await self._read_waiter
        finally:
            self._read_waiter = None

    def _take(self, n: int) -> bytes:
        parts = []
        remaining = n
        while remaining and self._in:
            head = self._in[0]
            if len(head) <= remaining:
                parts.append(self._in.popleft())
                remaining -= len(head)
            else:
                parts.append(head[:remaining])
                self._in[0] = head[remaining:]
                remaining = 0
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._in_len -= len(data)
        self._consumed += len(data)
        # re-open the window once half of it has been read
        if not self._eof and self._granted - self._consumed <= self._window // 2:
            self._grow_window()
            self._granted = self._consumed + self._window
            self._host._grant_credit(self._id, self._granted)
        self._check_done()
        return data

    def _grow_window(self) -> None:
        """Double the window while the app reads it faster than a few round trips.

        A stream nobody reads keeps the small initial window (bounded memory); a
        bulk reader soon gets enough credit in flight to fill the path.
        """
        now = self._loop.time()
        if now - self._last_grant < 4 * self._host._rtt_estimate():
            self._window = min(self._window * 2, self._max_window)
        self._last_grant = now

    def _wake_reader(self) -> None:
        if self._read_waiter is not None and not self._read_waiter.done():
            self._read_waiter.set_result(None)

    # -- writing ---------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; it leaves as fast as flow and congestion control allow."""
        if self._write_error is not None:
            raise self._write_error
        if self._eof_requested:
            raise ConnectionClosedError("write after write_eof() or close()")
        if not data:
            return
        self._out.append(bytes(data))
        self._out_len += len(data)
        self._host._flush_stream(self)

    async def drain(self) -> None:
        """Wait until the write buffer is back under its high-water mark."""
        while True:
            if self._write_error is not None:
                raise self._write_error
            if self._out_len <= self._high_water:
                return
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._drain_waiters:
                    self._drain_waiters.remove(waiter)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Send FIN after everything written so far; reading stays open."""
        if self._eof_requested or self._write_error is not None:
            return
        self._eof_requested = True
        self._host._flush_stream(self)

    def close(self) -> None:
        """Finish writing (FIN after queued data) and stop reading."""
        if self._closing:
            return
        self._closing = True
        self.write_eof()
        if not self._eof and self._read_error is None:
            self._reading_stopped = True
            self._in.clear()
            self._in_len = 0
            self._host._stop_receiving(self._id)
        if self._read_error is None:
            self._read_error = ConnectionClosedError("stream closed")
        self._wake_reader()
        self._check_done()

    def abort(self) -> None:
        """Close both directions at once, dropping unsent data (QUIC RESET_STREAM)."""
        if self._write_error is None and not self._fin_sent:
            self._host._reset_sending(self._id)
        self._fail_write(ConnectionClosedError("stream aborted"))
        self.close()

    def is_closing(self) -> bool:
        return self._closing or self._closed.is_set()

    async def wait_closed(self) -> None:
        """Wait until queued data and FIN went to QUIC and reading is over."""
        await self._closed.wait()

    # -- fed by the connection -------------------------------------------------

    def _next_chunk(self) -> tuple[bytes, bool]:
        """The next bytes to hand to QUIC (within credit) and whether FIN follows them."""
        if self._write_error is not None or self._fin_sent:
            return b"", False
        allowed = self._send_limit - self._sent
        parts = []
        while allowed > 0 and self._out:
            head = self._out[0]
            if len(head) <= allowed:
                parts.append(self._out.popleft())
                allowed -= len(head)
            else:
                parts.append(head[:allowed])
                self._out[0] = head[allowed:]
                allowed = 0
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._out_len -= len(data)
        self._sent += len(data)
        fin = self._eof_requested and not self._out
        if fin:
            self._fin_sent = True
        if self._out_len <= self._high_water:
            for waiter in self._drain_waiters:
                if not waiter.done():
                    waiter.set_result(None)
        if fin:
            self._check_done()
        return data, fin

    def _all_sent(self) -> bool:
        """True when nothing written (nor a requested FIN) still waits here for credit."""
        if self._write_error is not None:
            return True
        return not self._out and (self._fin_sent or not self._eof_requested)

    def _hold_back(self, limit: int) -> None:
        """Let the peer send only up to ``limit`` for now: it is not admitted yet."""
        self._granted = min(self._granted, limit)

    def _release(self) -> None:
        """The peer was admitted: it may fill the window it was promised (no Credit
        needed: the Accept that admitted it says how much)."""
        self._granted = max(self._granted, self._window)

    def _set_protocol(self, protocol: bytes, header_size: int) -> None:
        """The peer's stream header named its protocol; its bytes count as read."""
        self.protocol = protocol
        self._received = self._consumed = header_size

    def _credit(self, limit: int) -> bool:
        """The peer raised our send limit; True when there is now something to send."""
        if limit <= self._send_limit:
            return False
        self._send_limit = limit
        return bool(self._out)

    def _feed(self, data: bytes, fin: bool) -> bool:
        """Bytes from the peer; False when it sent past the credit it was given."""
        self._received += len(data)
        if self._received > self._granted:
            return False
        if not self._reading_stopped and data:
            self._in.append(data)
            self._in_len += len(data)
        if fin:
            self._eof = True
            self._peer_finished = True
        self._wake_reader()
        self._check_done()
        return True

    def _fail_read(self, error: ConnectionClosedError) -> None:
        if self._read_error is None and not self._eof:
            self._read_error = error
        self._wake_reader()
        self._check_done()

    def _fail_write(self, error: ConnectionClosedError) -> None:
        if self._write_error is None and not self._fin_sent:
            self._write_error = error
            self._out.clear()
            self._out_len = 0
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._check_done()

    def _connection_lost(self, error: ConnectionClosedError) -> None:
        self._fail_read(error)
        self._fail_write(error)
        self._closed.set()

    def _reset_by_peer(self, error_code: int) -> None:
        self._peer_finished = True
        self._fail_read(
            StreamResetError(f"stream reset by peer (code {error_code})", error_code=error_code)
        )

    def _stopped_by_peer(self, error_code: int) -> None:
        self._fail_write(
            StreamResetError(f"peer stopped reading (code {error_code})", error_code=error_code)
        )

    def _check_done(self) -> None:
        write_done = self._fin_sent or self._write_error is not None
        read_done = (
            self._reading_stopped or self._read_error is not None or (self._eof and not self._in)
        )
        if write_done and read_done:
            self._closed.set()
        # the connection forgets the stream only once the peer can send nothing more
        # on it, so a late frame never looks like a new stream
        if write_done and self._peer_finished:
            self._host._forget_stream(self)
