"""The shared YAML plumbing: every YAML mistake and every validation error is one
``file:line: field: what is wrong`` line, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hl7gw.yamlfile import LINE_KEY, MAX_ERRORS, YamlDocument, field_name, load_file, parse


class Broken(Exception):
    """What the caller asks the plumbing to raise."""


def parse_error(text: str) -> str:
    with pytest.raises(Broken) as info:
        parse(text, "f.yaml", Broken)
    return str(info.value)


@pytest.mark.parametrize(("text", "expected"), [
    # scanner: a tab where indentation is expected
    ("a: 1\n\tb: 2\n", "f.yaml:2: not valid YAML: found a tab character"),
    # parser: a flow list never closed
    ("a: 1\nb: [1, 2\nc: 3\n", "f.yaml:3: not valid YAML: "),
    # composer: an alias to no anchor
    ("a: 1\nb: *nowhere\n", "f.yaml:2: not valid YAML: found undefined alias"),
    # constructor: a value its explicit tag cannot read (was a bare ValueError)
    ("a: 1\nport: !!int eighty\n", "f.yaml:2: not valid YAML: cannot read 'eighty' as !!int"),
    ("on: !!bool maybe\n", "f.yaml:1: not valid YAML: cannot read 'maybe' as !!bool"),
    # constructor: a mapping used as a key (doubled braces; was a TypeError)
    ("users:\n  - {{name: x}}\n", "f.yaml:2: not valid YAML: a key must be plain text"),
    ("? [a, b]\n: 1\n", "f.yaml:1: not valid YAML: a key must be plain text"),
    # only the safe tags
    ("a: !!python/object:os.system x\n", "f.yaml:1: not valid YAML: could not determine a "
                                         "constructor for the tag"),
    # an alias inside what it names would never end
    ("a: &x [1, *x]\n", "f.yaml:1: not valid YAML: an alias refers to a mapping or list"),
])
def test_every_kind_of_yaml_error_is_one_located_line(text: str, expected: str) -> None:
    message = parse_error(text)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_data_is_what_safe_load_gives() -> None:
    text = ("base: &b {host: h, port: 1}\nhttp:\n  <<: *b\n  port: 2\nflags: [yes, null, 1.5]\n"
            "when: 2024-06-01\nversion: 2.5\n")
    import yaml

    assert parse(text, "f.yaml", Broken).data == yaml.safe_load(text)


def test_lines_of_keys_and_items() -> None:
    doc = parse("a: 1\nlisteners:\n  - name: x\n    port: 2\n  - name: y\n", "f.yaml", Broken)
    assert doc.line(("listeners",)) == 2
    assert doc.line(("listeners", 0, "port")) == 4
    assert doc.line(("listeners", 1)) == 5
    assert doc.line(("listeners", 1, "port")) == 5  # absent: its nearest parent
    assert doc.line(("nothing", "here")) == 1


def test_empty_file_is_no_data() -> None:
    assert parse("# only a comment\n", "f.yaml", Broken).data is None


def test_stamp_puts_a_mapping_s_line_in_it() -> None:
    doc = parse("a: 1\nrules:\n  - x: 1\n    with: {y: 2}\n", "f.yaml", Broken,
                stamp=lambda loc: all(p == "rules" for p in loc if isinstance(p, str)))
    assert doc.data[LINE_KEY] == 1
    assert doc.data["rules"][0][LINE_KEY] == 3
    assert LINE_KEY not in doc.data["rules"][0]["with"]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(Broken, match=r"missing\.yaml:1: cannot read config: No such file"):
        load_file(tmp_path / "missing.yaml", Broken, what="config")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: Gagn\xe9\n")
    with pytest.raises(Broken, match=r"latin\.yaml:1: cannot read config: .*utf-8"):
        load_file(latin, Broken, what="config")


class Oidc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["oidc"]
    client_secret: str


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["api_key"]
    value: str


class Listener(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int
    timezone: str | int = "UTC"


class Root(BaseModel):
    model_config = ConfigDict(extra="forbid")
    listeners: list[Listener]
    auth: Annotated[Oidc | ApiKey, Field(discriminator="type")] | None = None


def describe(text: str) -> list[str]:
    doc = parse(text, "f.yaml", Broken)
    with pytest.raises(ValidationError) as info:
        Root.model_validate(doc.data)
    return doc.describe(info.value.errors()).splitlines()


def test_describe_names_file_line_and_field_with_union_tags_dropped() -> None:
    lines = describe("listeners:\n  - port: 1\n  - port: x\n"
                     "auth:\n  type: oidc\n  client_secrte: s\n")
    assert lines == [
        "f.yaml:6: auth.client_secrte: unknown key (check the spelling)",
        "f.yaml:3: listeners[1].port: Input should be a valid integer, unable to parse "
        "string as an integer",
        "f.yaml:4: auth.client_secret: Field required",
    ]


def test_describe_keeps_a_few_lines() -> None:
    text = "listeners:\n" + "".join(f"  - port: p{i}\n" for i in range(MAX_ERRORS + 3))
    assert len(describe(text)) == MAX_ERRORS


def test_describe_union_of_scalars() -> None:
    lines = describe("listeners:\n  - port: 1\n    timezone: [a]\n")
    assert all(line.startswith("f.yaml:3: listeners[0].timezone: ") for line in lines), lines


def test_field_name() -> None:
    assert field_name(("listeners", 0, "tls", "certfile")) == "listeners[0].tls.certfile"
    assert field_name(()) == "(top level)"


def test_document_is_plain_data() -> None:
    doc = YamlDocument("f.yaml", {"a": 1}, None, {("a",): 3})
    assert doc.line(("a", "b")) == 3
