"""``hl7gw map`` over files of several messages and FHS/BHS batches, as a user runs it.

Each message of the file gives the same Bundle as mapping it alone, split as the gateway
splits what it receives; a refused message is named on stderr and the others still map.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.support import REPO, sample_path, with_control_id

pytestmark = pytest.mark.integration

HL7GW = str(Path(sys.executable).with_name("hl7gw"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HL7GW, "map", *args], capture_output=True, text=True, timeout=180,
                          env=dict(os.environ), cwd=REPO, check=False)


def message(name: str, control_id: str) -> bytes:
    raw = sample_path(name).read_bytes().lstrip(b"\xef\xbb\xbf")
    raw = raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b"\r") + b"\r"
    return with_control_id(raw, control_id)


A01, ORU = message("adt_a01", "B1"), message("oru_r01", "B3")
REFUSED = A01.replace(b"ADT^A01^ADT_A01", b"ADT^A99", 1).replace(b"|B1|", b"|B2|", 1)


def batch(*messages: bytes, count: int | None = None) -> bytes:
    """FHS/BHS ... BTS/FTS with LF line ends, as a batch file is usually saved."""
    body = b"".join(messages)
    text = (b"FHS|^~\\&|EPIC|GOOD|HL7GW|CLOUD|20240502\r"
            b"BHS|^~\\&|EPIC|GOOD|HL7GW|CLOUD|20240502||||BATCH7\r" + body +
            b"BTS|" + str(len(messages) if count is None else count).encode() + b"\rFTS|1\r")
    return text.replace(b"\r", b"\n")


def alone(tmp_path: Path, raw: bytes, name: str) -> object:
    """The Bundle ``hl7gw map`` prints for ``raw`` as a file of its own."""
    path = tmp_path / f"{name}.hl7"
    path.write_bytes(raw)
    out = run(str(path))
    assert out.returncode == 0, out.stderr
    return orjson.loads(out.stdout)


def test_a_batch_prints_one_bundle_per_line_and_names_the_refused_message(
        tmp_path: Path) -> None:
    path = tmp_path / "batch.hl7"
    path.write_bytes(batch(A01, REFUSED, ORU))
    out = run(str(path))
    assert out.returncode == 2
    lines = out.stdout.splitlines()
    assert len(lines) == 2  # JSON Lines: one compact Bundle each, the refused one left out
    bundles = [orjson.loads(line) for line in lines]
    for bundle in bundles:
        Bundle.model_validate(bundle)
    assert bundles == [alone(tmp_path, A01, "a01"), alone(tmp_path, ORU, "oru")]
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
    assert errors == [
        f"error: {path}: message 2 (MSH-10 B2): UnsupportedEvent at MSH-9: trigger event "
        "A99 of ADT is not supported",
        f"error: {path}: 1 of 3 messages refused"]


def test_a_file_of_messages_with_out_writes_one_file_each(tmp_path: Path) -> None:
    path = tmp_path / "two.hl7"
    path.write_bytes((A01 + ORU).replace(b"\r", b"\r\n"))
    target = tmp_path / "bundles"
    out = run("--out", str(target), str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(target / "001-B1.json"), str(target / "002-B3.json")]
    assert sorted(p.name for p in target.iterdir()) == ["001-B1.json", "002-B3.json"]
    assert orjson.loads((target / "001-B1.json").read_bytes()) == alone(tmp_path, A01, "a")
    assert orjson.loads((target / "002-B3.json").read_bytes()) == alone(tmp_path, ORU, "o")


def test_out_keeps_file_names_safe_and_goes_on_after_a_refusal(tmp_path: Path) -> None:
    path = tmp_path / "batch.hl7"
    path.write_bytes(batch(with_control_id(A01, ""), with_control_id(A01, "../x y")))
    out = run("--out", str(tmp_path / "o"), str(path))
    assert out.returncode == 2
    assert f"error: {path}: message 1 (no MSH-10): RequiredFieldMissing at MSH-10" in out.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["002-x_y.json"]


def test_a_batch_whose_count_is_wrong_is_refused_whole_as_over_mllp(tmp_path: Path) -> None:
    path = tmp_path / "cut.hl7"
    path.write_bytes(batch(A01, ORU, count=3))
    out = run(str(path))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == (f"error: {path}: batch refused whole at BTS-1, as the "
                                  "gateway refuses it: BTS-1 says 3 messages, the batch holds 2")


def test_explain_over_a_batch_heads_each_report(tmp_path: Path) -> None:
    path = tmp_path / "batch.hl7"
    path.write_bytes(batch(A01, ORU))
    out = run("--explain", str(path))
    assert out.returncode == 0, out.stderr
    heads = [ln for ln in out.stdout.splitlines() if ln.startswith("# ")]
    assert heads == [f"# {path}: message 1 (MSH-10 B1)", f"# {path}: message 2 (MSH-10 B3)"]
    assert "IG PID[Patient]: PID-5 -> Patient.name" in out.stdout


def test_one_message_still_prints_one_indented_bundle(tmp_path: Path) -> None:
    path = tmp_path / "one.hl7"
    path.write_bytes(A01)
    out = run(str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("{\n  ") and orjson.loads(out.stdout)["type"] == "transaction"
