"""CPU time of other processes (gateway/cpu_time.py), read from the real /proc and a fake."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from gateway.cpu_time import cpu_bound, cpu_seconds, listening_pid
from gateway.pipeline_bench import local_broker_pid
from gateway.pipeline_figures import cpu_line

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux
def test_a_process_that_works_has_used_more_cpu_since() -> None:
    before = cpu_seconds([os.getpid()])
    assert before is not None
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn 50 ms of CPU
        pass
    after = cpu_seconds([os.getpid()])
    assert after is not None and after - before >= 0.03  # clock ticks are 10 ms


def test_a_gone_process_has_no_figure(tmp_path: Path) -> None:
    assert cpu_seconds([1234], proc=tmp_path) is None


def test_the_command_name_may_hold_spaces_and_parentheses(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    # pid (comm) state ppid ... utime=fields[13] stime=fields[14], 1-based
    rest = ["S"] + ["0"] * 10 + ["250", "150"] + ["0"] * 10
    (tmp_path / "7" / "stat").write_text("7 (a b) (c)) " + " ".join(rest))
    assert cpu_seconds([7], proc=tmp_path) == pytest.approx(400 / os.sysconf("SC_CLK_TCK"))


@linux
def test_the_process_listening_on_a_port_is_found() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert listening_pid(port) == os.getpid()
        assert local_broker_pid(f"localhost:{port},other:9092") == os.getpid()
    assert listening_pid(port) is None  # closed: nobody listens there now
    assert local_broker_pid(f"kafka.example.org:{port}") is None  # not this machine's


def test_the_cpu_bound_shares_the_cores_and_holds_the_loop_to_one() -> None:
    assert cpu_bound(2, 100, 100) == pytest.approx(10_000)
    assert cpu_bound(2, 300, 100) == pytest.approx(1e6 / 300)  # the one event loop
    assert cpu_bound(1, 100, 400) == pytest.approx(2_000)  # the one shared core
    assert cpu_bound(2, 0, 100) == 0  # nothing measured: no bound claimed


def test_the_pipeline_cpu_line_names_each_process_and_the_bound() -> None:
    figures = {"gateway_cpu_us_per_msg": 400.0, "mapping_cpu_us_per_msg": 180.0,
               "senders_cpu_us_per_msg": 120.0, "broker_cpu_us_per_msg": None,
               "total_cpu_us_per_msg": 700.0, "cpu_bound_msg_per_s": 2500, "cores": 2}
    line = cpu_line(figures)
    assert "gateway process 400, mapping workers 180, senders 120;" in line
    assert "Kafka broker" not in line  # not measured (a remote broker)
    assert "700 in all: at most 2,500 msg/s on 2 cores" in line
