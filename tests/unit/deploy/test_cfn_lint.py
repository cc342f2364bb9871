"""The AWS SAM template passes cfn-lint, and its Kafka event sources say what we rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "deploy" / "aws" / "template.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsics (!Ref, !GetAtt ...) as plain data."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def template() -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=CfnLoader)
    return data


def test_cfn_lint_passes() -> None:
    result = subprocess.run([str(CFN_LINT), "--format", "parseable", str(TEMPLATE)],
                            capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_would_catch_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text(encoding="utf-8").replace(
        "MessageRetentionPeriod: 1209600", "MessageRetentionPeriod: 99999999"),
        encoding="utf-8")
    result = subprocess.run([str(CFN_LINT), str(broken)], capture_output=True, text=True,
                            timeout=240, check=False)
    assert result.returncode != 0 and "E3034" in result.stdout


def kafka_events() -> dict[str, dict[str, Any]]:
    events = {}
    for name, resource in template()["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            for event in resource["Properties"]["Events"].values():
                events[event["Type"]] = {"function": name, "condition": resource["Condition"],
                                         **event["Properties"]}
    return events


def test_function_handler_and_kafka_sources() -> None:
    data = template()
    function = data["Globals"]["Function"]
    assert function["Handler"] == "connectors.cloud.handler"
    assert function["Runtime"] == "python3.11"
    events = kafka_events()
    assert set(events) == {"MSK", "SelfManagedKafka"}
    assert events["MSK"]["condition"] == "UseMsk"
    assert events["SelfManagedKafka"]["condition"] == "UseSelfManagedKafka"
    assert data["Conditions"]["UseMsk"] == {"Equals": [{"Ref": "KafkaSource"}, "MSK"]}
    for event in events.values():
        assert event["Topics"] == [{"Ref": "Topic"}]
        assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert event["DestinationConfig"]["OnFailure"]["Destination"] == {
            "GetAtt": "FailedRecords.Arn"}
        assert event["SourceAccessConfigurations"][0]["URI"] == {"Ref": "KafkaSecretArn"}
        assert event["MaximumRetryAttempts"] >= 1 and event["BisectBatchOnFunctionError"]
    assert events["MSK"]["Stream"] == {"Ref": "MskClusterArn"}
    assert events["SelfManagedKafka"]["KafkaBootstrapServers"] == {"Ref": "BootstrapServers"}


def test_event_properties_are_known_to_the_sam_schema() -> None:
    """cfn-lint matches SAM events loosely (anyOf), so check the names against its schema."""
    import cfnlint.data.schemas.resources as schemas

    folder = Path(next(iter(schemas.__path__)))
    schema = next(s for s in (json.loads(p.read_text()) for p in folder.glob("*.json"))
                  if s.get("typeName") == "AWS::Serverless::Function")
    allowed = {kind: set(schema["definitions"][f"{kind}EventProperties"]["properties"])
               for kind in ("MSK", "SelfManagedKafka")}
    # SAM documents DestinationConfig for SelfManagedKafka; cfn-lint's copy predates it.
    allowed["SelfManagedKafka"].add("DestinationConfig")
    for kind, event in kafka_events().items():
        used = set(event) - {"function", "condition"}
        assert used <= allowed[kind], used - allowed[kind]
