"""The bounded ``sender`` label on ACK and refusal metrics: configured senders by their
``senders:`` entry, everyone else ``other``, whatever MSH-3/MSH-4 a peer invents."""

from __future__ import annotations

from pathlib import Path

from gateway.config import GatewaySettings, ListenerSettings, SenderSettings
from gateway.intake import Intake
from gateway.metrics import sender_label, sender_labels
from gateway.mllp.client import split_messages
from gateway.service import GatewayService
from gateway.spool import Spool
from tests.support import SAMPLES, with_control_id, with_msh

A01 = with_msh(split_messages((SAMPLES / "adt_a01.hl7").read_bytes())[0], f15="", f16="")
SENDERS = [SenderSettings(application="SUNLAB", facility="RIVERSIDE"),
           SenderSettings(application="EPIC", facility="*")]


def test_labels_come_from_the_configuration_only() -> None:
    assert sender_label(SENDERS[0]) == "SUNLAB|RIVERSIDE"
    assert sender_label(None) == "other"
    assert sender_labels(SENDERS) == ["SUNLAB|RIVERSIDE", "EPIC|*", "other"]
    assert sender_labels([]) == ["other"]


def label_values(service: GatewayService, metric: str) -> dict[str, float]:
    """sender label -> summed value of ``metric``'s samples."""
    out: dict[str, float] = {}
    for family in service.registry.collect():
        for sample in family.samples:
            if sample.name == metric:
                sender = sample.labels["sender"]
                out[sender] = out.get(sender, 0.0) + sample.value
    return out


async def test_invented_senders_all_count_as_other(tmp_path: Path, spool: Spool) -> None:
    listener = ListenerSettings(name="lab", senders=SENDERS)
    settings = GatewaySettings.model_validate({
        "listeners": [listener.model_dump()], "spool": {"path": str(tmp_path / "s.db")},
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topic": "t"}})
    service = GatewayService(settings, http=False)
    intake = Intake(listener, spool, service.metrics)
    handle = service._handler(intake.handle, "lab")
    for n in range(40):  # forty senders nobody configured
        await handle(with_control_id(with_msh(A01, f3=f"APP{n}", f4=f"FAC{n}"), f"O{n}"), "p")
    for n in range(2):
        msg = with_msh(A01, f3="SUNLAB", f4="RIVERSIDE^2.16.840.1.113883.19.5^ISO")
        await handle(with_control_id(msg, f"S{n}"), "p")
    await handle(with_control_id(with_msh(A01, f3="EPIC", f4="NORTH"), "E1"), "p")
    refused = with_msh(A01, f3="NEWAPP", f4="X", f9="ADT^A99")
    await handle(with_control_id(refused, "R1"), "p")
    await handle(with_control_id(with_msh(refused, f3="SUNLAB", f4="RIVERSIDE"), "R2"), "p")

    acks = label_values(service, "hl7gw_acks_total")
    assert acks == {"SUNLAB|RIVERSIDE": 3.0, "EPIC|*": 1.0, "other": 41.0}
    rejected = label_values(service, "hl7gw_rejected_total")
    assert rejected == {"other": 1.0, "SUNLAB|RIVERSIDE": 1.0}
    series = {s.labels["sender"] for f in service.registry.collect() for s in f.samples
              if s.name == "hl7gw_acks_total"}
    assert series == {"SUNLAB|RIVERSIDE", "EPIC|*", "other"}  # 3 senders, not 44
