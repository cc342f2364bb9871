"""Every workload in deploy/k8s passes the restricted Pod Security Standard, and its probes
ask paths the process in the container serves, on the port its configuration binds.

The checks are those of the "restricted" profile (kubernetes.io/docs/concepts/security/
pod-security-standards), plus a read-only root filesystem whose writable places are
volumes (emptyDir or the spool's claim), as deploy/README.md promises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from connectors.probes import probe_app
from gateway.app import create_app as gateway_app
from gateway.config import GatewaySettings, load_settings
from tests.unit.deploy.test_k8s_manifests import config_text, documents

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet")
# Volume types the restricted profile allows.
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}


def workloads() -> list[dict[str, Any]]:
    found = [d for d in documents() if d["kind"] in WORKLOADS]
    assert {d["kind"] for d in found} >= {"Deployment", "StatefulSet"}
    return found


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def ids(workloads_: list[dict[str, Any]]) -> list[str]:
    return [f"{w['kind']}/{w['metadata']['name']}" for w in workloads_]


@pytest.mark.parametrize("workload", workloads(), ids=ids(workloads()))
def test_restricted_pod_security(workload: dict[str, Any]) -> None:
    pod = pod_spec(workload)
    pod_ctx = pod.get("securityContext", {})
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host), host
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= ALLOWED_VOLUMES, (volume["name"], kinds)
    for container in containers(pod):
        ctx = container.get("securityContext", {})
        where = container["name"]
        # runAsNonRoot: true on the pod or the container, never false on the container
        assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, where
        assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 1)) != 0, where
        assert ctx.get("allowPrivilegeEscalation") is False, where
        assert not ctx.get("privileged", False), where
        caps = ctx.get("capabilities", {})
        assert "ALL" in caps.get("drop", []), where
        assert set(caps.get("add", [])) <= {"NET_BIND_SERVICE"}, where
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
        assert seccomp.get("type") in ("RuntimeDefault", "Localhost"), where
        assert ctx.get("readOnlyRootFilesystem") is True, where
        for port in container.get("ports", []):
            assert "hostPort" not in port, where


@pytest.mark.parametrize("workload", workloads(), ids=ids(workloads()))
def test_writable_places_are_volumes_and_tmp_is_one(workload: dict[str, Any]) -> None:
    pod = pod_spec(workload)
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
    for container in containers(pod):
        writable = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])
                    if not m.get("readOnly")}
        assert "/tmp" in writable, container["name"]
        for path, name in writable.items():
            assert name in claims or "emptyDir" in volumes.get(name, {}) or \
                "persistentVolumeClaim" in volumes.get(name, {}), (path, name)


def _settings(tmp_path: Path) -> GatewaySettings:
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(), encoding="utf-8")
    return load_settings(path, env={})


class _Runtime:
    registry = CollectorRegistry()

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        return True, {}


async def _not_called() -> tuple[bool, dict[str, Any]]:
    raise AssertionError


def _served(command: str, settings: GatewaySettings) -> tuple[FastAPI, str, int]:
    """The app the container's command serves probes from, its bind host and its port."""
    if command == "serve":
        return gateway_app(_Runtime()), settings.http.host, settings.http.port
    if command == "bridge":
        assert settings.bridge is not None
        http = settings.bridge.http
        assert http.enabled
        return probe_app(_not_called, CollectorRegistry(), title="bridge"), http.host, http.port
    raise AssertionError(f"no probe routes known for hl7gw {command}")


@pytest.mark.parametrize("workload", workloads(), ids=ids(workloads()))
def test_probes_ask_what_the_process_serves_where_it_listens(
        workload: dict[str, Any], tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    for container in pod_spec(workload)["containers"]:
        app, host, port = _served(container["args"][0], settings)
        paths = {getattr(route, "path", None) for route in app.routes}
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        assert {"livenessProbe", "readinessProbe"} <= set(container), container["name"]
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            if kind not in container:
                continue
            get = container[kind]["httpGet"]
            assert get["path"] in paths, (kind, get["path"])
            target = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
            assert target == port, (kind, target, port)
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert host == "0.0.0.0"  # the kubelet probes the pod's address, not loopback
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            assert int(annotations["prometheus.io/port"]) == port
            assert annotations["prometheus.io/path"] in paths
