"""Config loading: defaults, env override, and errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.errors import ConfigError
from tests.support import SAMPLES

GOOD = """\
source: urn:test
listeners:
  - name: adt
    port: 2600
kafka:
  bootstrap_servers: 127.0.0.1:9092
  topic: t
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(text)
    return path


def test_good_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), env={})
    assert s.listeners[0].port == 2600
    assert s.kafka.topic == "t"
    assert s.spool.path == Path("var/spool.db")


def test_env_overrides_bootstrap(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), env={"KAFKA_BOOTSTRAP_SERVERS": "h:1"})
    assert s.kafka.bootstrap_servers == "h:1"


def test_unknown_key_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    port: 2600", "    port: 2600\n    prot: 1"))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert f"{path}:5: listeners[0].prot: unknown key (check the spelling)" in str(info.value)


def test_bad_value_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("port: 2600", "port: seventy"))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert f"{path}:4: listeners[0].port:" in str(info.value)


def test_unknown_charset_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("port: 2600", "port: 2600\n    charset: klingon"))
    with pytest.raises(ConfigError, match=r":5: listeners\[0\]\.charset: unknown charset .klingon"):
        load_settings(path, env={})


def test_missing_kafka_section(tmp_path: Path) -> None:
    path = write(tmp_path, "source: x\n")
    with pytest.raises(ConfigError, match=r"gw.yaml:1: kafka: Field required"):
        load_settings(path, env={})


def test_broken_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "source: x\nlisteners: [\n  - a\n")
    with pytest.raises(ConfigError, match=r"gw.yaml:\d+: not valid YAML"):
        load_settings(path, env={})


def test_sample_config_is_valid() -> None:
    s = load_settings((SAMPLES / "gateway.yaml"), env={})
    assert s.bridge is not None
    assert s.listeners[0].message_types is None  # every mapped type: what a new site expects


@pytest.mark.parametrize(("broken", "line", "problem"), [
    # issue 16.12: both gave a traceback (TypeError, ValueError) from the final safe_load
    ("console:\n  users:\n    - {{name: x}}\n", 10,
     "a key must be plain text, not a list or a mapping (are the braces doubled, as in "
     "{{...}}?)"),
    ("http:\n  port: !!int eighty\n", 9, "cannot read 'eighty' as !!int"),
])
def test_every_broken_yaml_is_one_located_line(tmp_path: Path, broken: str, line: int,
                                               problem: str) -> None:
    path = write(tmp_path, GOOD + broken)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == f"{path}:{line}: not valid YAML: {problem}"


def test_union_branch_is_not_shown_as_a_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "bridge:\n  target_url: http://127.0.0.1:1/\n  auth:\n"
                 "    type: oidc\n    token_url: http://127.0.0.1:2/\n    client_id: gw\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == f"{path}:10: bridge.auth.client_secret: Field required"


def test_unknown_time_zone_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "default_timezone: Mars/Olympus\n" + GOOD)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value).startswith(f"{path}:1: default_timezone: unknown time zone "
                                      "'Mars/Olympus'")


def test_empty_file_asks_for_kafka(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    with pytest.raises(ConfigError, match=r"gw.yaml:1: kafka: Field required"):
        load_settings(path, env={})
