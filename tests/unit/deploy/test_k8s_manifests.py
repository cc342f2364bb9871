"""The Kubernetes manifests parse, and their wiring matches the gateway configuration."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from gateway.config import load_settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [d for d in documents() if d["kind"] == kind
               and (name is None or d["metadata"]["name"] == name)]
    return found


def config_text() -> str:
    text: str = one("ConfigMap")["data"]["gateway.yaml"]
    return text


def container_of(workload: dict[str, Any]) -> dict[str, Any]:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return container


def test_every_manifest_has_kind_and_name() -> None:
    docs = documents()
    assert {d["kind"] for d in docs} == {"ConfigMap", "StatefulSet", "Service", "Deployment"}
    assert all(d["apiVersion"] and d["metadata"]["name"] for d in docs)


def test_configmap_is_a_valid_gateway_config(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(), encoding="utf-8")
    settings = load_settings(path, env={})
    assert settings.http.host == "0.0.0.0" and settings.listeners[0].host == "0.0.0.0"
    assert settings.bridge is not None


def test_gateway_probes_ports_and_spool_volume(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(), encoding="utf-8")
    settings = load_settings(path, env={})
    gateway = one("StatefulSet")
    container = container_of(gateway)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"mllp": settings.listeners[0].port, "http": settings.http.port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    [claim] = gateway["spec"]["volumeClaimTemplates"]
    spool_dir = PurePosixPath(mounts[claim["metadata"]["name"]])
    assert spool_dir in PurePosixPath(str(settings.spool.path)).parents
    config_arg = PurePosixPath(container["args"][container["args"].index("--config") + 1])
    assert container["args"][0] == "serve"
    assert str(config_arg.parent) == mounts["config"] and config_arg.name == "gateway.yaml"
    assert gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_profiles_and_audit_log_have_their_volumes(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(), encoding="utf-8")
    settings = load_settings(path, env={})
    gateway = one("StatefulSet")
    mounts = {m["name"]: m["mountPath"] for m in container_of(gateway)["volumeMounts"]}
    assert str(settings.profiles.dir) == mounts["profiles"]
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    assert volumes["profiles"]["configMap"] == {"name": "hl7gw-profiles", "optional": True}
    # the audit log lives on the spool's persistent volume, not in the pod's own disk
    spool_dir = PurePosixPath(mounts["spool"])
    assert spool_dir in PurePosixPath(str(settings.console.audit_path)).parents


def test_services_select_the_gateway_and_target_named_ports() -> None:
    labels = one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    services = [d for d in documents() if d["kind"] == "Service"]
    assert services
    for service in services:
        assert service["spec"]["selector"].items() <= labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} == {"mllp", "http"}
    assert one("StatefulSet")["spec"]["serviceName"] in {s["metadata"]["name"] for s in services}


def test_bridge_deployment_runs_the_bridge_with_the_same_config() -> None:
    bridge = one("Deployment")
    container = container_of(bridge)
    assert container["args"] == ["bridge", "--config", "/etc/hl7gw/gateway.yaml"]
    [volume] = [v for v in bridge["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    gateway_volumes = one("StatefulSet")["spec"]["template"]["spec"]["volumes"]
    assert volume in gateway_volumes
    assert bridge["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30


def test_both_workloads_mount_the_optional_secrets_the_config_refers_to(
        tmp_path: Path) -> None:
    for workload in (one("StatefulSet"), one("Deployment")):
        mounts = {m["name"]: m for m in container_of(workload)["volumeMounts"]}
        assert mounts["secrets"]["mountPath"] == "/etc/hl7gw-secrets"
        assert mounts["secrets"]["readOnly"] is True
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        assert volumes["secrets"]["secret"] == {"secretName": "hl7gw-secrets",
                                                "optional": True}
    # the commented examples in the ConfigMap, uncommented, load with the Secret's files
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "kafka-password").write_text("pw\n")
    (secrets / "olga.sha256").write_text("0" * 64)
    examples = ("security_protocol", "sasl_", "- {name: olga")
    text = "\n".join(line.replace("# ", "", 1) if any(e in line for e in examples) else line
                     for line in config_text().replace("users: []", "users:").splitlines())
    path = tmp_path / "gateway.yaml"
    path.write_text(text.replace("/etc/hl7gw-secrets", str(secrets)), encoding="utf-8")
    settings = load_settings(path, env={})
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "pw"
    assert settings.console.users[0].name == "olga"
