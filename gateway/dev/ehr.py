"""A local EHR for the return path: an MLLP receiver that ACKs, records and misbehaves.

The gateway's return path sends FHIR results back to the hospital as HL7 v2 over MLLP.
To build and test that sender without a hospital, :class:`LocalEhr` plays the EHR's
inbound interface (like HAPI TestPanel's receiver): every frame is recorded and answered
with a proper ACK (``gateway.ack.build_ack``: sender and receiver swapped, its own MSH-10,
``ACK^<event>^ACK``, the version copied, MSA-2 = the received MSH-10, an ERR on AE/AR).

A real EHR is not always polite, so the faults a sender must survive can be switched on
at runtime: another ACK code (``ack``), no answer at all (``ack = "none"``), a slow answer
(``delay_ms``), a sequence of codes (:meth:`LocalEhr.script`), a late ACK for an earlier
message (:meth:`LocalEhr.stale_ack_next`) and a dropped connection
(:meth:`LocalEhr.drop_next`).

Its own small server, not the gateway's ``MllpListener``: that one carries the intake
policy (allowlists, caps, refusals) a test peer must not have. Frames on one connection
are answered one after another, as an interface engine does; connections run side by side.

Message contents go to ``out`` (the terminal of ``hl7gw dev ehr``: showing them is the
point of the tool), never to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final

from gateway.ack import ack_bytes, build_ack
from gateway.errors import ListenError
from gateway.mllp.framing import FrameDecoder, FrameTooLarge, encode_frame
from mappers.errors import MessageError, UnreadableMessage
from mappers.hl7v2.envelope import Envelope, Sniffed, sniff

if TYPE_CHECKING:
    from hl7gw.shutdown import Shutdown

__all__ = ["ACK_MODES", "LocalEhr", "Received", "run_local_ehr"]

log = logging.getLogger("hl7gw.dev.ehr")

ACK_MODES: Final = ("AA", "AE", "AR", "none")
STALE_CODE: Final = "AA"  # a late positive ACK: the most misleading kind for a sender
READ_SIZE: Final = 64 * 1024
MAX_FRAME_BYTES: Final = 16 * 1024 * 1024
STOP_GRACE_S: Final = 2.0  # for connection tasks to end once cancelled


@dataclass
class Received:
    """One frame that arrived, and what the local EHR answered.

    ``control_id`` is MSH-10 and ``message_type`` MSH-9.1^MSH-9.2 (both "" when the frame
    holds no MSH); ``raw`` the frame's bytes as they came. ``ack_code`` is the MSA-1 of the
    ACK sent for this message, or None while none was (mode ``none``, a drop, a stale ACK
    only, or still waiting out ``delay_ms``). ``stale_ack_for`` is the control id the stale
    ACK sent before (or instead of) this message's own ACK named, or None.
    """

    at: float  # wall time (time.time()) of arrival
    peer: str
    control_id: str
    message_type: str
    raw: bytes
    ack_code: str | None = None
    stale_ack_for: str | None = None


@dataclass(frozen=True)
class _Plan:
    """What to do with one message, settled when it arrives."""

    code: str  # "AA", "AE", "AR" or "none"
    drop: bool = False
    stale: bool = False
    then_correct: bool = True


class _Nak(MessageError):
    """The reason the local EHR gives in the ERR of an AE or AR it sends on purpose."""

    def __init__(self, code: str) -> None:
        if code == "AR":
            super().__init__("refused on purpose by the local EHR (ack mode AR)")
            self.err_code = "200"  # HL7 0357: unsupported message type
        else:
            super().__init__("application error on purpose by the local EHR (ack mode AE)")
            self.err_code = "207"  # HL7 0357: application internal error


def _check_mode(code: str) -> str:
    if code not in ACK_MODES:
        raise ValueError(f"ack mode {code!r}: use one of {', '.join(ACK_MODES)}")
    return code


class LocalEhr:
    """A local EHR's MLLP inbound interface; ``async with LocalEhr(port=0) as ehr: ...``.

    ``ack`` is the default answer ("AA", "AE", "AR" or "none": never answer, keep the
    connection); ``delay_ms`` waits before each answer. Both may be changed at any time.
    ``out`` receives a readable block per message (``click.echo`` in the CLI).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, ack: str = "AA",
                 delay_ms: int = 0, out: Callable[[str], None] | None = None) -> None:
        self.host = host
        self._requested_port = port
        self._port = port
        self.ack = ack
        self.delay_ms = delay_ms
        self.out = out
        self.received: list[Received] = []
        self._script: deque[str] = deque()
        self._stale: bool | None = None  # then_correct of a pending stale_ack_next()
        self._drop = False
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._arrived = asyncio.Event()
        self._previous: Envelope | None = None  # the last message's envelope (stale ACKs)
        self._run = secrets.token_hex(3).upper()
        self._acks_sent = 0
        self._last_printed: Received | None = None

    # settings ------------------------------------------------------------------------

    @property
    def ack(self) -> str:
        """The default answer: "AA", "AE", "AR" or "none"."""
        return self._ack

    @ack.setter
    def ack(self, code: str) -> None:
        self._ack = _check_mode(code)

    @property
    def delay_ms(self) -> int:
        """Milliseconds to wait before each answer (a slow EHR)."""
        return self._delay_ms

    @delay_ms.setter
    def delay_ms(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"delay_ms {value}: must be 0 or more")
        self._delay_ms = value

    def script(self, codes: list[str]) -> None:
        """The next ``len(codes)`` messages get these answers in order, then ``ack`` again.

        Each code is one of ``ACK_MODES``; a new script replaces one not yet used up.
        """
        self._script = deque(_check_mode(c) for c in codes)

    def stale_ack_next(self, then_correct: bool = True) -> None:
        """The next message is first answered with a late ACK for the message before it.

        That ACK (``AA``) is the one the previous message would get: its envelope, MSA-2 =
        the previous MSH-10 (empty when there was none). With ``then_correct`` the
        message's own ACK follows after ``delay_ms``; without, the stale ACK is all it gets.
        """
        self._stale = then_correct

    def drop_next(self) -> None:
        """Close the connection of the next message as it arrives, without answering."""
        self._drop = True

    # lifetime ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port bound (the real one after ``start()`` with port 0)."""
        return self._port

    async def start(self) -> LocalEhr:
        """Bind and accept connections; ``ListenError`` names the address and the fix."""
        if self._server is not None:
            return self
        try:
            self._server = await asyncio.start_server(
                self._on_connection, self.host, self._requested_port, reuse_address=True)
        except OSError as exc:
            raise ListenError.bind_failed("MLLP (local EHR)", self.host,
                                          self._requested_port, exc, "--port") from None
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("local EHR listening", extra={"port": self._port, "ack": self.ack})
        return self

    async def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Stop accepting and close every connection, within ``grace`` seconds or so.

        Answers still waiting out ``delay_ms`` are not sent.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=grace)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), grace)
        log.info("local EHR stopped", extra={"port": self._port})

    async def __aenter__(self) -> LocalEhr:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def wait_for(self, count: int, timeout: float) -> list[Received]:  # noqa: ASYNC109
        """Wait until at least ``count`` messages arrived; all received so far.

        ``timeout`` is part of the call (not ``asyncio.timeout`` around it) so the error
        can say how many of ``count`` came.

        Raises ``TimeoutError`` saying how many came when ``timeout`` seconds pass first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < count:
            self._arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        if len(self.received) < count:
            raise TimeoutError(
                f"local EHR on port {self._port} received {len(self.received)} of {count} "
                f"messages within {timeout:g} s: is the sender pointed at this port?")
        return list(self.received)

    # connections ---------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        peer = _peer_text(writer.get_extra_info("peername"))
        decoder = FrameDecoder(max_frame_bytes=MAX_FRAME_BYTES)
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    return
                try:
                    frames = decoder.feed(data)
                except FrameTooLarge as exc:
                    for frame in exc.frames:
                        if not await self._handle(frame, peer, writer):
                            return
                    self._say(f"<- a frame over {MAX_FRAME_BYTES} bytes from {peer}: "
                              "connection closed, no ACK")
                    return
                for frame in frames:
                    if not await self._handle(frame, peer, writer):
                        return
        except (ConnectionError, OSError):
            return  # the peer went away: nothing to answer
        except asyncio.CancelledError:
            pass  # stop(); ending as cancelled would make asyncio log the server callback
        except Exception as exc:  # noqa: BLE001 - one bad connection must not stop the port
            log.error("local EHR connection failed",
                      extra={"peer": peer, "error_class": type(exc).__name__})
        finally:
            self._connections.pop(task, None)
            writer.close()

    async def _handle(self, frame: bytes, peer: str, writer: asyncio.StreamWriter) -> bool:
        """Record and answer one frame; False when the connection is to be closed."""
        sniffed = sniff(frame)
        env = sniffed.envelope
        is_hl7 = _has_msh(frame, sniffed)
        comp = env.encoding_chars[0]
        kind = comp.join(_message_type(frame, sniffed)) if is_hl7 else ""
        record = Received(time.time(), peer, env.control_id if is_hl7 else "", kind, frame)
        charset = sniffed.layout or sniffed.declared or "utf-8"
        previous = self._previous
        if is_hl7:
            self._previous = env
        self.received.append(record)
        self._arrived.set()
        self._print_arrival(record, frame, charset)

        if not is_hl7:  # answered AR whatever the mode: the sender must learn why
            unreadable = UnreadableMessage(
                "the frame holds no MSH segment: not an HL7 v2 message", segment="MSH")
            await self._send(writer, record, env, "AR", charset, error=unreadable)
            return True

        plan = self._plan()
        if plan.drop:
            self._say("-> (connection closed on purpose, no ACK)")
            return False
        if plan.stale:
            stale_env = previous or dataclasses.replace(env, control_id="")
            record.stale_ack_for = stale_env.control_id
            await self._send(writer, record, stale_env, STALE_CODE, charset, stale=True)
            if not plan.then_correct:
                return True
        if plan.code == "none":
            self._say("-> (no ACK: ack mode none)")
            return True
        if self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        error = _Nak(plan.code) if plan.code in ("AE", "AR") else None
        await self._send(writer, record, env, plan.code, charset, error=error)
        return True

    def _plan(self) -> _Plan:
        """Take this message's one-shot settings (drop, stale, script), else the default."""
        if self._drop:
            self._drop = False
            return _Plan("none", drop=True)
        code = self._script.popleft() if self._script else self.ack
        stale, self._stale = self._stale, None
        if stale is None:
            return _Plan(code)
        return _Plan(code, stale=True, then_correct=stale)

    async def _send(self, writer: asyncio.StreamWriter, record: Received, env: Envelope,
                    code: str, charset: str, *, error: MessageError | None = None,
                    stale: bool = False) -> None:
        self._acks_sent += 1
        ack_id = f"EHR{self._run}{self._acks_sent:06d}"
        text = build_ack(env, code, ack_control_id=ack_id, error=error)
        writer.write(encode_frame(ack_bytes(text, charset)))
        if stale:
            self._say(f"-> {code} (stale: MSA-2 {env.control_id or '(empty)'}, "
                      "an earlier message's ACK)", record)
        else:
            record.ack_code = code  # before the peer can read it: tests see it at once
            self._say(f"-> {code}", record)
        await writer.drain()

    # printing ------------------------------------------------------------------------

    def _print_arrival(self, record: Received, frame: bytes, charset: str) -> None:
        if self.out is None:
            return
        what = f"{record.message_type or '(no type)'} control id {record.control_id}" \
            if record.message_type or record.control_id else "(not HL7: no MSH segment)"
        text = frame.decode(charset, "replace")
        segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]
        self.out("\n".join([f"<- {what} from {record.peer}", *segments]))
        self._last_printed = record

    def _say(self, line: str, record: Received | None = None) -> None:
        """An outcome line; it names its message when another block came in between."""
        if self.out is None:
            return
        if record is not None and record is not self._last_printed:
            line += f" (for control id {record.control_id} from {record.peer})"
        self.out(line)


async def run_local_ehr(shutdown: Shutdown, *, host: str, port: int, ack: str,
                        delay_ms: int, out: Callable[[str], None]) -> None:
    """``hl7gw dev ehr``: listen, say where, print each message until a stop signal."""
    async with LocalEhr(host, port, ack=ack, delay_ms=delay_ms, out=out) as ehr:
        delay = f", delay {delay_ms} ms" if delay_ms else ""
        out(f"local EHR listening on {_host_text(host)}:{ehr.port} (ack {ack}{delay})")
        await shutdown.wait()


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _has_msh(frame: bytes, sniffed: Sniffed) -> bool:
    """The frame starts with an MSH segment (after a BOM or blank lines)."""
    if sniffed.layout.startswith("utf-16"):
        return "MSH" in frame[:16].decode(sniffed.layout, "replace")
    return frame.lstrip(b"\xef\xbb\xbf\r\n ").startswith(b"MSH")


def _message_type(frame: bytes, sniffed: Sniffed) -> list[str]:
    """MSH-9.1 and MSH-9.2 (the sniffer keeps only the event, so MSH-9.1 is read here)."""
    env = sniffed.envelope
    if sniffed.layout.startswith("utf-16"):
        first = frame[:65536].decode(sniffed.layout, "replace").lstrip("\ufeff\r\n ")
    else:
        first = frame.lstrip(b"\xef\xbb\xbf\r\n ").decode("latin-1")
    first = first.replace("\n", "\r").split("\r", 1)[0]
    fields = first.split(env.field_sep)
    msh9 = fields[8].split(env.encoding_chars[0]) if len(fields) > 8 else []
    return [part for part in msh9[:2] if part]


def _peer_text(peername: object) -> str:
    """``127.0.0.1:50412`` or ``[::1]:50412`` from a socket's peer name."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = str(peername[0]), peername[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(peername)
