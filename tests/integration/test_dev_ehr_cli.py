"""``hl7gw dev ehr`` as a user runs it: a subprocess, a real sender, a signal to stop.

The command prints where it listens (the real port for ``--port 0``), each message and
the ACK code it sent; SIGTERM (``kill``) or SIGINT to the process group (a terminal's
Ctrl-C) stops it with exit code 0. Every wait is a deadline generous enough for a
loaded machine, and the process is killed whatever happens.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import sample_path

pytestmark = pytest.mark.integration

HL7GW = str(Path(sys.executable).with_name("hl7gw"))
START_S = 60.0  # interpreter and imports on a loaded machine
STOP_S = 20.0  # the command's own bound is 3 s + 2 s; the rest is scheduling slack
SAMPLE = sample_path("adt_a01")
SAMPLE_ID = "GH20240115103000001"
LISTENING = re.compile(r"local EHR listening on 127\.0\.0\.1:(\d+) \(ack (\w+)")


class Ehr:
    """``hl7gw dev ehr ARGS`` in its own session, stdout and stderr into files."""

    def __init__(self, tmp: Path, *args: str) -> None:
        tmp.mkdir()
        self.out, self.err = tmp / "ehr.out", tmp / "ehr.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen([HL7GW, "dev", "ehr", *args], stdout=out,
                                            stderr=err, start_new_session=True)

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for_output(self, pattern: str | re.Pattern[str], within: float) -> re.Match[str]:
        """The first match of ``pattern`` in stdout, waiting up to ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            found = re.search(pattern, self.stdout())
            if found:
                return found
            if self.process.poll() is not None:
                pytest.fail(f"hl7gw dev ehr exited ({self.process.returncode}) before "
                            f"printing {pattern!r}:\n{self.stdout()}\n{self.err.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} within {within:g} s:\n{self.stdout()}")
            time.sleep(0.05)

    def port(self) -> int:
        return int(self.wait_for_output(LISTENING, START_S).group(1))

    def stop(self, sig: signal.Signals) -> int:
        """Send ``sig`` as a user would; the exit code, or fail past the deadline."""
        if sig == signal.SIGINT:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        try:
            return self.process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hl7gw dev ehr still running {STOP_S:g} s after {sig.name}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_S)


@pytest.fixture
def run_ehr(tmp_path: Path) -> Iterator[Callable[..., Ehr]]:
    """``run_ehr(*args)`` starts ``hl7gw dev ehr ARGS``; every one started is killed after."""
    started: list[Ehr] = []

    def start(*args: str) -> Ehr:
        started.append(Ehr(tmp_path / f"ehr{len(started)}", *args))
        return started[-1]

    try:
        yield start
    finally:
        for ehr in started:
            ehr.kill()


def send(port: int, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HL7GW, "send", "--port", str(port), "--timeout", "30", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_prints_the_message_and_its_ack_then_stops_on_a_signal(
        run_ehr: Callable[..., Ehr], sig: signal.Signals) -> None:
    ehr = run_ehr("--port", "0")
    port = ehr.port()
    assert port > 0

    sent = send(port, SAMPLE)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.startswith("AA")

    block = ehr.wait_for_output(r"(?s)<- ADT\^A01 control id (\S+) from 127\.0\.0\.1:\d+\n"
                                r"(MSH\|.*?)\n-> (\w+)\n", within=30)
    assert block.group(1) == SAMPLE_ID
    segments = block.group(2).split("\n")
    assert [s[:3] for s in segments] == ["MSH", "EVN", "PID", "PV1"]
    assert block.group(3) == "AA"

    assert ehr.stop(sig) == 0
    assert "Traceback" not in ehr.err.read_text()


def test_ack_mode_from_the_command_line(run_ehr: Callable[..., Ehr]) -> None:
    ehr = run_ehr("--port", "0", "--ack", "AE", "--delay-ms", "50")
    port = ehr.port()
    assert "(ack AE, delay 50 ms)" in ehr.stdout()

    sent = send(port, SAMPLE)
    assert sent.returncode == 1  # hl7gw send: not accepted
    assert sent.stdout.startswith("AE")
    ehr.wait_for_output(rf"control id {SAMPLE_ID} [^\n]*\n(?:[^\n]*\n)*?-> AE\n", within=30)
    assert ehr.stop(signal.SIGTERM) == 0


def test_a_taken_port_is_one_line_and_exit_2(run_ehr: Callable[..., Ehr]) -> None:
    first = run_ehr("--port", "0")
    port = first.port()
    second = subprocess.run([HL7GW, "dev", "ehr", "--port", str(port)], capture_output=True,
                            text=True, timeout=START_S, check=False)
    assert second.returncode == 2
    assert second.stderr.startswith(f"error: cannot listen for MLLP (local EHR) on "
                                    f"127.0.0.1:{port}")
    assert "Traceback" not in second.stderr


def test_help_reads_well() -> None:
    shown = subprocess.run([HL7GW, "dev", "ehr", "--help"], capture_output=True, text=True,
                           timeout=START_S, check=True).stdout
    for option in ("--port", "--host", "--ack [AA|AE|AR|none]", "--delay-ms"):
        assert option in shown
    assert "Ctrl-C or SIGTERM" in shown
