"""YAML files with line numbers, and their mistakes as ``file:line: field: what is wrong``.

The gateway config, the mapping specs and the sender profiles are YAML files that people
edit by hand. Each is read here: parsed once into nodes (so every key and item has a line),
built into plain Python data from those nodes, and, when the model that validates the data
refuses it, every pydantic error becomes one line naming the file, the line and the field
(``listeners[0].port``, ``rules[3].type``). Every kind of YAML error (scanner, parser,
composer, constructor: ``port: !!int eighty``, an unhashable key ``- {{name: x}}``) is
reported the same way; nothing here lets a traceback through.

The caller passes the exception class to raise (``ConfigError``, ``SpecError``,
``ProfileError``), so this module imports nothing from the packages that use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The C loader when libyaml is there (specs load at every start), else the pure one.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Loc = tuple[str | int, ...]
Lines = dict[Loc, int]
ErrorFactory = Callable[[str], Exception]

_ABSENT = object()
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "dict"})
MAX_ERRORS = 5  # lines per report: the first few mistakes, not a wall of text
LINE_KEY = "__line__"  # the key a stamped mapping carries its start line in


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One parsed YAML file: its data, its node tree, and the line of every key and item."""

    where: str  # the file as named in messages
    data: Any
    root: yaml.Node | None
    lines: Lines

    def line(self, loc: Iterable[str | int]) -> int:
        """The line of ``loc``, else of its nearest parent that has one; 1 at worst."""
        at = tuple(loc)
        for i in range(len(at), -1, -1):
            if at[:i] in self.lines:
                return self.lines[at[:i]]
        return 1

    def describe(self, errors: Iterable[Mapping[str, Any]], prefix: Loc = (),
                 data: Any = None) -> str:
        """One ``file:line: field: message`` line per pydantic error (at most MAX_ERRORS).

        ``prefix`` places the errors of a sub-model validated on its own (a profile's
        ``fields[2]``); ``data`` is what was validated, when not the whole document.
        A misspelt key is named first: it sits on the line to fix, and usually also
        explains the "Field required" next to it.
        """
        ordered = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")
        base = self.data if data is None else data
        out = []
        for err in ordered[:MAX_ERRORS]:
            loc = (*prefix, *data_loc(base, tuple(err["loc"])))
            out.append(f"{self.where}:{self.line(loc)}: {field_name(loc)}: "
                       f"{error_text(err)}")
        return "\n".join(out)


def load_file(path: Path, error: ErrorFactory, *, what: str = "file",
              stamp: Callable[[Loc], bool] | None = None) -> YamlDocument:
    """Read and parse ``path``; any problem (unreadable, not UTF-8, not YAML) is ``error``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(f"{path}:1: cannot read {what}: {reason}") from None
    return parse(text, str(path), error, stamp=stamp)


def parse(text: str, where: str, error: ErrorFactory, *,
          stamp: Callable[[Loc], bool] | None = None) -> YamlDocument:
    """Parse one YAML document; raise ``error("where:line: not valid YAML: ...")``.

    ``stamp(loc)`` says which mappings get their start line under ``__line__`` (the
    mapping specs keep a line per rule, to name it in later cross-checks).
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
        if root is None:
            return YamlDocument(where, None, None, {})
        builder = _Builder(stamp)
        data = builder.build(root, (), frozenset())
    except yaml.YAMLError as exc:
        raise error(f"{where}:{_mark_line(exc)}: not valid YAML: {_problem(exc)}") from None
    return YamlDocument(where, data, root, builder.lines)


class _Builder:
    """Python data from a node tree, as ``yaml.safe_load`` builds it, plus the lines.

    One per file: PyYAML's constructor keeps state, so none is shared between threads
    (profiles reload off the event loop).
    """

    def __init__(self, stamp: Callable[[Loc], bool] | None) -> None:
        self.stamp = stamp
        self.lines: Lines = {}
        self.scalars = yaml.constructor.SafeConstructor()  # the safe tags: int, bool, null...

    def build(self, node: yaml.Node, at: Loc, above: frozenset[int]) -> Any:
        """The value of ``node``; a key's own line wins over its value's in ``lines``."""
        self.lines.setdefault(at, node.start_mark.line + 1)
        if id(node) in above:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to a mapping or list that contains it",
                node.start_mark)
        inner = above | {id(node)}
        if isinstance(node, yaml.MappingNode):
            self.scalars.flatten_mapping(node)  # merge keys (<<: *base), as safe_load does
            out: dict[Any, Any] = {}
            if self.stamp is not None and self.stamp(at):
                out[LINE_KEY] = node.start_mark.line + 1
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise yaml.constructor.ConstructorError(
                        None, None, "a key must be plain text, not a list or a mapping "
                        "(are the braces doubled, as in {{...}}?)", key_node.start_mark)
                key = self.scalar(key_node)
                child = (*at, str(key))
                self.lines[child] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, child, inner)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*at, i), inner) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def scalar(self, node: yaml.Node) -> Any:
        """A scalar by its tag; a value its explicit tag cannot read is a YAML error."""
        try:
            return self.scalars.construct_object(node)
        except (ValueError, TypeError, KeyError, ArithmeticError):
            # e.g. ``!!int eighty``, ``!!bool maybe``: PyYAML raises these bare
            tag = node.tag.rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} as !!{tag}", node.start_mark) from None


def _mark_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else 1


def _problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).strip() or type(exc).__name__
    return " ".join(str(problem).split())


def data_loc(data: Any, loc: Loc) -> Loc:
    """A pydantic error location with its union-branch tags dropped.

    pydantic puts the branch it tried into the location (``auth.oidc.client_secret``,
    ``timezone.function-after[...]``). A part that is not a key of the data at that
    point, and is not the last part (a missing key), is such a tag.
    """
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(part, str) and ("[" in part or part == LINE_KEY):
            continue
        if isinstance(node, dict):
            if part in node:
                node = node[part]
            elif isinstance(part, str) and (not last or part in _TYPE_TAGS):
                continue  # a union tag over a mapping ('auth', 'oidc', ...)
            else:
                node = _ABSENT  # a missing key: named, nothing below it
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(part, str) and node is not _ABSENT:
            continue  # a tag over a scalar or list: ('timezone', 'str')
        else:
            node = _ABSENT
        out.append(part)
    return tuple(out)


def field_name(loc: Iterable[str | int]) -> str:
    """``('listeners', 0, 'port')`` as ``listeners[0].port``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def error_text(err: Mapping[str, Any]) -> str:
    """A pydantic error's message, as a person editing the file wants it."""
    if err.get("type") == "extra_forbidden":
        return "unknown key (check the spelling)"
    return str(err["msg"]).removeprefix("Value error, ")
