"""The deployment code is checked by the tools its users run: helm, checkov and an HCL parser.

- ``deploy/helm/hl7gw``: ``helm lint --strict`` and ``helm template`` with the default values
  and with every option on; the rendered manifests meet the restricted Pod Security
  Standard, probe the ports the rendered ``gateway.yaml`` serves, and that config loads.
- ``checkov`` on the Terraform modules (``deploy/terraform/{aws,azure,gcp}``), the rendered
  manifests and the SAM template (``deploy/aws/template.yaml``), in one run, next to broken
  copies it must refuse (so a run that checks nothing cannot pass).
- Every ``.tf`` parses (python-hcl2), every ``var.X`` is declared and every declared
  variable is used; the modules say what the deployment relies on (partial batch
  responses, invoker-only Cloud Run, a function key for Azure).

The tools are built or installed on first use (``tests.support.deploy_tools``; minutes,
once per machine). If that fails, these tests fail under CI and skip elsewhere.
``terraform validate`` is not run: it needs the providers from the Terraform registry.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import types
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from gateway.config import GatewaySettings, load_settings
from tests.support import REPO
from tests.support.deploy_tools import ToolUnavailable, checkov_command, hcl_python, helm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]  # first builds: minutes

CHART = REPO / "deploy" / "helm" / "hl7gw"
TERRAFORM = REPO / "deploy" / "terraform"
SAM = REPO / "deploy" / "aws" / "template.yaml"
MODULES = ("aws", "azure", "gcp")
NAMESPACE = "hl7gw"
WORKLOADS = ("StatefulSet", "Deployment")
TIMEOUT_S = 600.0

# Every option on: TLS on MLLP (mutual) and to Kafka, SASL, the mapper, a ServiceMonitor,
# the chart's own profiles, a LoadBalancer for MLLP.
FULL_VALUES: dict[str, Any] = {
    "image": {"digest": "sha256:" + "ab" * 32},
    "listeners": [
        {"name": "adt", "port": 2575, "message_types": ["ADT^A01"], "tls": True},
        {"name": "lab", "port": 2576, "max_connections": 50},
    ],
    "http": {"port": 9080},
    "tls": {"mllp": {"secretName": "mllp-tls", "requireClientCert": True},
            "kafka": {"enabled": True, "secretName": "kafka-tls", "clientCert": True}},
    "kafkaSasl": {"enabled": True, "passwordSecret": {"name": "kafka-sasl", "key": "pw"}},
    "kafkaBootstrapServers": "kafka-0.kafka:9093",
    "profiles": {"files": {"oldlab.yaml": "sender: {application: OLDLAB}\n"}},
    "bridge": {"httpPort": 9081},
    "mapper": {"enabled": True, "replicas": 3, "httpPort": 9091},
    "service": {"mllp": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]}},
    "serviceMonitor": {"enabled": True},
    "networkPolicy": {"mllpFrom": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]},
}


def _need(tool: Callable[[], Any]) -> Any:
    try:
        return tool()
    except ToolUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def _run(command: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=TIMEOUT_S,
                          check=False)


# helm -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    path: Path = _need(helm)
    return path


@pytest.fixture(scope="module")
def full_values(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("values") / "full.yaml"
    path.write_text(yaml.safe_dump(FULL_VALUES), encoding="utf-8")
    return path


def render(helm_bin: Path, *args: str) -> list[dict[str, Any]]:
    done = _run([str(helm_bin), "template", "hl7gw", str(CHART), "--namespace", NAMESPACE,
                 *args])
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module")
def default_docs(helm_bin: Path) -> list[dict[str, Any]]:
    return render(helm_bin)


@pytest.fixture(scope="module")
def full_docs(helm_bin: Path, full_values: Path) -> list[dict[str, Any]]:
    return render(helm_bin, "-f", str(full_values))


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The workloads by component (gateway, bridge, mapper)."""
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d
            for d in docs if d["kind"] in WORKLOADS}


def rendered_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [config] = [d for d in docs if d["kind"] == "ConfigMap"
                and d["metadata"]["name"].endswith("-config")]
    data: dict[str, Any] = yaml.safe_load(config["data"]["gateway.yaml"])
    return data


def test_helm_lint_passes_with_default_and_full_values(helm_bin: Path,
                                                       full_values: Path) -> None:
    for extra in ([], ["-f", str(full_values)]):
        done = _run([str(helm_bin), "lint", "--strict", str(CHART), *extra])
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_pod_meets_the_restricted_pod_security_standard(
        default_docs: list[dict[str, Any]], full_docs: list[dict[str, Any]]) -> None:
    for docs in (default_docs, full_docs):
        for component, workload in workloads(docs).items():
            pod = workload["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, component
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["automountServiceAccountToken"] is False
            assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
            assert all("hostPath" not in v for v in pod["volumes"]), component
            for container in pod["containers"] + pod.get("initContainers", []):
                sc = container["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, component
                assert sc["capabilities"] == {"drop": ["ALL"]}, component
                assert sc["readOnlyRootFilesystem"] is True, component
                assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
                assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
                assert all("hostPort" not in p for p in container["ports"])


def test_writable_paths_are_volumes(full_docs: list[dict[str, Any]]) -> None:
    """Read-only root: /tmp is an emptyDir everywhere; the spool and audit log on the PVC."""
    config = rendered_config(full_docs)
    for component, workload in workloads(full_docs).items():
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        [container] = pod["containers"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]], component
        writable = {path for path, m in mounts.items() if not m.get("readOnly")}
        if component == "gateway":
            assert writable == {"/tmp", "/var/lib/hl7gw"}
            spool = PurePosixPath("/var/lib/hl7gw")
            assert spool in PurePosixPath(config["spool"]["path"]).parents
            assert spool in PurePosixPath(config["console"]["audit_path"]).parents
        else:
            assert writable == {"/tmp"}, component


def test_probes_ask_the_port_each_process_serves(default_docs: list[dict[str, Any]],
                                                full_docs: list[dict[str, Any]]) -> None:
    for docs in (default_docs, full_docs):
        config = rendered_config(docs)
        served = {"gateway": config["http"], "bridge": config["bridge"]["http"]}
        if "scale_out" in config:
            served["mapper"] = config["scale_out"]["http"]
        found = workloads(docs)
        assert set(found) == set(served)
        for component, workload in found.items():
            [container] = workload["spec"]["template"]["spec"]["containers"]
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports["http"] == served[component]["port"], component
            assert served[component]["host"] == "0.0.0.0"  # reachable by the kubelet
            for probe, path in (("livenessProbe", "/healthz"), ("startupProbe", "/healthz"),
                                ("readinessProbe", "/readyz")):
                assert container[probe]["httpGet"] == {"path": path, "port": "http"}


def test_services_target_ports_their_pods_declare(full_docs: list[dict[str, Any]]) -> None:
    found = workloads(full_docs)
    services = [d for d in full_docs if d["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} >= {
        "hl7gw-mllp", "hl7gw-http", "hl7gw-gateway-headless", "hl7gw-bridge", "hl7gw-mapper"}
    for service in services:
        [target] = [w for w in found.values()
                    if service["spec"]["selector"].items()
                    <= w["spec"]["template"]["metadata"]["labels"].items()]
        [container] = target["spec"]["template"]["spec"]["containers"]
        names = {p["name"] for p in container["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    [mllp] = [s for s in services if s["metadata"]["name"] == "hl7gw-mllp"]
    assert [p["port"] for p in mllp["spec"]["ports"]] == [2575, 2576]
    assert mllp["spec"]["type"] == "LoadBalancer"
    assert mllp["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]


def test_gateway_has_one_spool_per_pod(default_docs: list[dict[str, Any]],
                                       helm_bin: Path) -> None:
    gateway = workloads(default_docs)["gateway"]
    assert gateway["kind"] == "StatefulSet"
    [claim] = gateway["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "spool"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert gateway["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    # one claim cannot serve two gateways
    done = _run([str(helm_bin), "template", "x", str(CHART), "--set", "gateway.replicas=2",
                 "--set", "gateway.persistence.existingClaim=spool"])
    assert done.returncode != 0 and "one spool has one writer" in done.stderr


def test_value_mistakes_are_refused_naming_the_value(helm_bin: Path) -> None:
    cases = {
        "listeners[0].tls=true": "tls.mllp.secretName",
        "tls.kafka.enabled=true": "tls.kafka.secretName",
        "kafkaSasl.enabled=true": "kafkaSasl.passwordSecret.name",
    }
    for setting, named in cases.items():
        done = _run([str(helm_bin), "template", "x", str(CHART), "--set", setting])
        assert done.returncode != 0 and named in done.stderr, (setting, done.stderr)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hl7gw")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, pem_key = folder / "tls.crt", folder / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    shutil.copy(crt, folder / "ca.crt")
    return crt, pem_key


def test_rendered_config_loads_with_the_mounted_files(tmp_path: Path,
                                                      default_docs: list[dict[str, Any]],
                                                      full_docs: list[dict[str, Any]]) -> None:
    """The gateway's own loader accepts both configs, with the Secrets' files where mounted."""
    plain = tmp_path / "default.yaml"
    plain.write_text(yaml.safe_dump(rendered_config(default_docs)), encoding="utf-8")
    settings = load_settings(plain, env={})
    assert settings.bridge is not None and settings.bridge.http.port == 8081

    mounts = {"/etc/hl7gw-tls/mllp": tmp_path / "mllp", "/etc/hl7gw-tls/kafka": tmp_path / "kt",
              "/etc/hl7gw-kafka-sasl": tmp_path / "sasl"}
    for folder in mounts.values():
        folder.mkdir()
    for name in ("mllp", "kt"):
        _self_signed(tmp_path / name)
    (tmp_path / "sasl" / "password").write_text("s3cret\n")
    text = yaml.safe_dump(rendered_config(full_docs))
    assert "s3cret" not in text and "${file:/etc/hl7gw-kafka-sasl/password}" in text
    for mounted, local in mounts.items():
        text = text.replace(mounted, str(local))
    full = tmp_path / "full.yaml"
    full.write_text(text, encoding="utf-8")
    if "scale_out" not in GatewaySettings.model_fields:
        pytest.skip("this build's gateway has no scale_out settings (hl7gw mapper)")
    settings = load_settings(full, env={})
    assert [ls.port for ls in settings.listeners] == [2575, 2576]
    tls = settings.listeners[0].tls
    assert tls is not None and tls.require_client_cert
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "s3cret"
    assert settings.http.port == 9080


def test_mapper_is_an_optional_toggle(default_docs: list[dict[str, Any]],
                                      full_docs: list[dict[str, Any]]) -> None:
    assert "mapper" not in workloads(default_docs)
    assert "scale_out" not in rendered_config(default_docs)
    mapper = workloads(full_docs)["mapper"]
    assert mapper["spec"]["replicas"] == 3
    [container] = mapper["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["mapper", "--config", "/etc/hl7gw/gateway.yaml"]
    kinds = {d["kind"] for d in full_docs}
    assert "ServiceMonitor" in kinds and "ServiceMonitor" not in {d["kind"] for d in default_docs}


def test_secrets_come_from_secrets_never_from_values(full_docs: list[dict[str, Any]]) -> None:
    pod = workloads(full_docs)["bridge"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["kafka-sasl"]["secret"] == {
        "secretName": "kafka-sasl", "items": [{"key": "pw", "path": "password"}]}
    assert volumes["tls-kafka"]["secret"] == {"secretName": "kafka-tls"}
    assert not [d for d in full_docs if d["kind"] == "Secret"]  # the chart makes none


def test_broker_address_reaches_every_workload(default_docs: list[dict[str, Any]],
                                               full_docs: list[dict[str, Any]]) -> None:
    for component, workload in workloads(full_docs).items():
        [container] = workload["spec"]["template"]["spec"]["containers"]
        assert container["env"] == [{"name": "KAFKA_BOOTSTRAP_SERVERS",
                                     "value": "kafka-0.kafka:9093"}], component
    for workload in workloads(default_docs).values():
        [container] = workload["spec"]["template"]["spec"]["containers"]
        assert "env" not in container  # the config's bootstrap_servers apply


# checkov ----------------------------------------------------------------------------------

# Deliberately broken copies: each must fail exactly these checks.
BROKEN_TF = """
resource "aws_sqs_queue" "plain" {
  name = "unencrypted"
  sqs_managed_sse_enabled = false
}
"""
BROKEN_EXPECTED = {"broken.tf": "CKV_AWS_27", "broken-pod.yaml": "CKV_K8S_22"}


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory, helm_bin: Path,
                   full_values: Path) -> list[dict[str, Any]]:
    """One checkov run over copies of the Terraform, the rendered charts, the SAM template
    and the broken copies, laid out in one folder: the failed checks, each with its file."""
    command = _need(checkov_command)
    work = tmp_path_factory.mktemp("checkov")
    shutil.copytree(TERRAFORM, work / "terraform")
    (work / "sam").mkdir()
    shutil.copy(SAM, work / "sam" / SAM.name)
    for folder in ("k8s", "broken"):
        (work / folder).mkdir()
    for name, extra in (("default", []), ("full", ["-f", str(full_values)])):
        done = _run([str(helm_bin), "template", "hl7gw", str(CHART), "--namespace", NAMESPACE,
                     *extra])
        assert done.returncode == 0, done.stderr
        (work / "k8s" / f"{name}.yaml").write_text(done.stdout, encoding="utf-8")
        if name == "default":  # the same pods with a writable root filesystem
            (work / "broken" / "broken-pod.yaml").write_text(done.stdout.replace(
                "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"))
    (work / "broken" / "broken.tf").write_text(BROKEN_TF, encoding="utf-8")
    done = _run([*command, "--quiet", "--compact", "--output", "json",
                 "--framework", "terraform", "kubernetes", "cloudformation", "-d", str(work)])
    try:
        parsed = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no report (exit {done.returncode}):\n{done.stderr[-3000:]}")
    reports = parsed if isinstance(parsed, list) else [parsed]
    summaries = {r["check_type"]: r["summary"] for r in reports}
    assert set(summaries) == {"terraform", "kubernetes", "cloudformation"}, summaries
    # every part was looked at: all three modules' resources, both renders, the template
    assert summaries["terraform"]["resource_count"] >= 20, summaries
    assert summaries["kubernetes"]["resource_count"] >= 30, summaries
    assert summaries["cloudformation"]["resource_count"] >= 3, summaries
    assert all(s["parsing_errors"] == 0 for s in summaries.values()), summaries
    return [{"framework": report["check_type"], "id": check["check_id"],
             "file": check["file_path"], "resource": check["resource"],
             "name": check["check_name"]}
            for report in reports for check in report["results"]["failed_checks"]]


def test_checkov_refuses_the_broken_copies(checkov_report: list[dict[str, Any]]) -> None:
    for name, check in BROKEN_EXPECTED.items():
        assert any(Path(f["file"]).name == name and f["id"] == check for f in checkov_report), (
            name, check)


def test_checkov_passes_terraform_kubernetes_and_sam(
        checkov_report: list[dict[str, Any]]) -> None:
    """Every finding is fixed or skipped in the file with its reason."""
    ours = [f for f in checkov_report if Path(f["file"]).name not in BROKEN_EXPECTED]
    assert ours == [], "\n".join(f"{f['file']}: {f['id']} {f['name']} ({f['resource']})"
                                 for f in ours)


def test_every_checkov_skip_gives_a_reason() -> None:
    files = [*TERRAFORM.rglob("*.tf"), SAM, *(CHART / "templates").iterdir()]
    skips = [(p.name, m.group(0)) for p in files for m in re.finditer(
        r"checkov(?::skip=|\.io/skip\d+: |:\s*\n\s*skip:)[^\n]*", p.read_text())]
    assert skips
    for name, line in skips:
        if "skip:" in line and "id:" not in line:
            continue  # the SAM form: `- id: ...` and `comment: ...` follow, checked below
        assert re.search(r"CKV2?_[A-Z0-9]+_\d+[:=]\S.{10,}", line), (name, line)
    sam = yaml.safe_load(re.sub(r"!(\w+)", r"\1", SAM.read_text()))
    for resource in sam["Resources"].values():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 10, skip


# HCL --------------------------------------------------------------------------------------

# Runs in python-hcl2's virtualenv: each file as plain data (python-hcl2 8 keeps the quotes
# of strings and block labels, and marks blocks; both are dropped here).
PARSE = """
import json, sys, hcl2

def plain(value):
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value

out = {}
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            out[path] = {"ok": plain(hcl2.load(f))}
    except Exception as exc:
        out[path] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def parsed_tf(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    python = _need(hcl_python)
    broken = tmp_path_factory.mktemp("hcl") / "broken.tf"
    broken.write_text('resource "x" "y" {\n  a = \n}\n', encoding="utf-8")
    files = sorted(TERRAFORM.rglob("*.tf"))
    assert len(files) >= 12
    done = _run([str(python), "-c", PARSE, *map(str, files), str(broken)])
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert "error" in result.pop(str(broken))  # the parser does refuse bad HCL
    return result


def module_blocks(parsed: dict[str, Any], module: str) -> dict[str, list[Any]]:
    blocks: dict[str, list[Any]] = {}
    for path, result in parsed.items():
        if Path(path).parent.name == module:
            for kind, items in result["ok"].items():
                blocks.setdefault(kind, []).extend(items)
    return blocks


def test_every_tf_file_parses(parsed_tf: dict[str, Any]) -> None:
    errors = {p: r["error"] for p, r in parsed_tf.items() if "error" in r}
    assert errors == {}
    for module in MODULES:
        names = {Path(p).name for p in parsed_tf if Path(p).parent.name == module}
        assert names >= {"main.tf", "variables.tf", "outputs.tf", "versions.tf"}, module


def test_variables_are_declared_and_used(parsed_tf: dict[str, Any]) -> None:
    """What ``terraform validate`` would say first, without its providers."""
    for module in MODULES:
        folder = TERRAFORM / module
        declared = {name for block in module_blocks(parsed_tf, module).get("variable", [])
                    for name in block}
        used = {m for p in folder.glob("*.tf") for m in re.findall(r"\bvar\.(\w+)",
                                                                    p.read_text())}
        assert used - declared == set(), (module, used - declared)
        assert declared - used == set(), (module, declared - used)
        for p in folder.glob("*.tf"):  # every description or default but none secret
            assert not re.search(r"(password|secret_key|client_secret)\s*=\s*\"[^\"]",
                                 p.read_text()), p


def _resources(parsed: dict[str, Any], module: str, kind: str) -> dict[str, Any]:
    return {name: body for block in module_blocks(parsed, module).get("resource", [])
            for rtype, named in block.items() if rtype == kind
            for name, body in named.items()}


def test_aws_kafka_source_reports_partial_batch_failures(parsed_tf: dict[str, Any]) -> None:
    [mapping] = _resources(parsed_tf, "aws", "aws_lambda_event_source_mapping").values()
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["provisioned_poller_config"]  # Kafka retries need provisioned pollers
    assert "aws_sqs_queue.failed.arn" in json.dumps(mapping["destination_config"])
    [function] = _resources(parsed_tf, "aws", "aws_lambda_function").values()
    assert function["handler"] == "connectors.cloud.handler"
    assert "aws_kms_key.this.arn" in str(function["kms_key_arn"])


def test_gcp_service_is_invoked_only_by_the_bridge(parsed_tf: dict[str, Any]) -> None:
    members = _resources(parsed_tf, "gcp", "google_cloud_run_v2_service_iam_member")
    assert [m["role"] for m in members.values()] == ["roles/run.invoker"]
    granted = [str(body.get(key)) for block in module_blocks(parsed_tf, "gcp")["resource"]
               for named in block.values() for body in named.values()
               for key in ("member", "members") if key in body]
    assert granted and not [g for g in granted if "allUsers" in g or "allAuthenticated" in g]
    [service] = _resources(parsed_tf, "gcp", "google_cloud_run_v2_service").values()
    [container] = service["template"][0]["containers"]
    assert container["command"] == ["uvicorn"] and container["args"][0] == "connectors.cloud:app"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"uvicorn[>=<\[]', pyproject)  # in the image's virtualenv


def test_azure_function_key_stays_out_of_terraform_state(parsed_tf: dict[str, Any]) -> None:
    blocks = module_blocks(parsed_tf, "azure")
    data_sources = {kind for block in blocks.get("data", []) for kind in block}
    assert "azurerm_function_app_host_keys" not in data_sources
    [app] = _resources(parsed_tf, "azure", "azurerm_linux_function_app").values()
    assert app["https_only"] is True and app["storage_uses_managed_identity"] is True


def test_terraform_fmt_when_terraform_is_here() -> None:
    """``terraform fmt`` needs no providers; a machine without terraform skips this one."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("no terraform binary (optional: the HCL parse above covers syntax)")
    done = _run([binary, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)])
    assert done.returncode == 0, done.stdout + done.stderr


# Azure package ----------------------------------------------------------------------------


def test_azure_package_holds_the_entry_point_and_the_libraries(tmp_path: Path) -> None:
    build = tmp_path / "build"
    (build / "connectors").mkdir(parents=True)
    (build / "connectors" / "__init__.py").write_text("")
    out = tmp_path / "function.zip"
    done = _run(["sh", str(TERRAFORM / "azure" / "app" / "package.sh"), str(build), str(out)])
    assert done.returncode == 0, done.stderr
    names = set(zipfile.ZipFile(out).namelist())
    assert {"function_app.py", "host.json",
            ".python_packages/lib/site-packages/connectors/__init__.py"} <= names
    host = json.loads((TERRAFORM / "azure" / "app" / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""  # /events, as the bridge posts


@pytest.fixture
def fake_azure_functions(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """``azure.functions`` as the Functions worker provides it: what the entry point uses."""
    functions = types.ModuleType("azure.functions")

    class AuthLevel:
        FUNCTION = "function"
        ANONYMOUS = "anonymous"

    class AsgiFunctionApp:
        def __init__(self, app: Any, http_auth_level: Any) -> None:
            self.app, self.http_auth_level = app, http_auth_level

    functions.AuthLevel = AuthLevel  # type: ignore[attr-defined]
    functions.AsgiFunctionApp = AsgiFunctionApp  # type: ignore[attr-defined]
    azure = types.ModuleType("azure")
    azure.functions = functions  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "azure", azure)
    monkeypatch.setitem(sys.modules, "azure.functions", functions)
    yield functions


def test_azure_entry_point_needs_a_function_key(fake_azure_functions: types.ModuleType) -> None:
    import runpy

    import connectors.cloud

    namespace = runpy.run_path(str(TERRAFORM / "azure" / "app" / "function_app.py"))
    app = namespace["app"]
    assert app.app is connectors.cloud.app
    assert app.http_auth_level == "function"
