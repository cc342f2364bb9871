"""Fuzzing the HL7 tokenizer and every datatype function (hypothesis, bounded).

The tokenizer takes any text: a ``Message`` or ``UnreadableMessage``, and every accessor of
what it returns answers without raising. Each datatype function is reached the way the
gateway reaches it, through ``convert(..., validate=True)`` on a sample whose field that the
specs map with that datatype holds fuzzed text: the only exceptions allowed are the
documented ``MessageError`` subclasses, and every Bundle that comes out passes the
fhir.resources models (``InvalidOutput`` is a failure). Settings: tests/support/fuzz.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from mappers import convert, parse
from mappers.conversion import _convert
from mappers.errors import MessageError
from mappers.hl7v2 import Message, Repetition
from mappers.registry import DATATYPES
from tests.support import MESSAGES, SAMPLES, sample_text
from tests.support.fuzz import fuzz, fuzz_settings

pytestmark = fuzz

# text dense in what HL7 gives meaning to: delimiters, escapes, nulls, signs, digits,
# separators, and characters str methods call digits or spaces that int() and FHIR refuse
ATOMS = st.sampled_from(["|", "^", "~", "\\", "&", '""', "\\.br\\", "\\X0D\\", "\\E\\",
                         "\\F\\", "\\H\\", "\\S\\", "\\T\\", "\\R\\", "\\Z99\\", "\r", "\n",
                         " ", "\t", "0", "1", "9", "2024", "20240601", "120000", "+0000",
                         "-0500", ".", "-", "+", "<", ">", "=", ":", "/", "²", "٣", "\u00a0",
                         "\u2028", "\x00", "\x1c", "\x0b", "é", "😀", "MR", "LN", "HL70001",
                         "Base64", "AP", "PDF", "L", "H", "F", "N", "Y", "M", "UCUM", "mg"])
TEXT = st.lists(ATOMS | st.text(max_size=4), max_size=12).map("".join)


def walk(message: Message) -> Iterator[object]:
    """Every value the tokenizer offers, read through each accessor."""
    for seg in message.segments:
        for n in range(len(seg) + 2):
            f = seg.field(n)
            yield f.value, f.is_null, bool(f), f.component(2), seg.values(n)
            for rep in [*f.repetitions, f.first]:
                yield rep.text, rep.decoded(4), rep.cache_key, bool(rep), rep.is_null
                for i in range(1, len(rep.components) + 2):
                    part = rep.part(i)
                    yield (rep.component(i), rep.subcomponents(i), rep.subcomponent(i, 2),
                           rep.raw_component(i), part.component(1), part.decoded(2))


@fuzz_settings(3000)
@given(text=st.one_of(TEXT, st.text(max_size=60), TEXT.map(lambda t: "MSH" + t),
                      st.tuples(st.text(min_size=5, max_size=5), TEXT).map(
                          lambda p: f"MSH{p[0]}{p[1]}")))
@example(text="MSH|^~\\&|\rPID|||\\X0D\\^~\\Z99\\&&")
@example(text="MSH\r^~\\&")
def test_the_tokenizer_reads_any_text_or_refuses_it_as_unreadable(text: str) -> None:
    try:
        message = parse(text)
    except MessageError as exc:
        assert exc.ack_code == "AR"
        return
    for _ in walk(message):
        pass
    try:
        message.header  # noqa: B018 - reading MSH may refuse, as a MessageError only
    except MessageError:
        pass


# --- every datatype, through convert ------------------------------------------------------

SAMPLE_FILES = sorted(SAMPLES.glob("*.hl7")) + sorted(MESSAGES.glob("*.hl7"))


@cache
def targets() -> dict[str, list[tuple[str, str, int]]]:
    """Datatype name -> (sample text, segment id, field number) where the specs apply it."""
    found: dict[str, set[tuple[str, str, int]]] = {}
    for path in SAMPLE_FILES:
        text = path.read_bytes().decode()
        trace: list[tuple[str, str, str, object]] = []
        _convert(text, False, None, trace)
        for _, where, kind, _ in trace:
            if kind in DATATYPES and "-" in where:
                seg, _, rest = where.partition("-")
                found.setdefault(kind, set()).add((text, seg, int(rest.split(".")[0])))
    for name, same in SAME_FIELD.items():  # traced only when a sample has such a value
        found.setdefault(name, set()).update(found.get(same, ()))
    return {k: sorted(v, key=lambda t: (t[1], t[2], t[0])) for k, v in sorted(found.items())}


# the specs apply these to the same field as another datatype, under the same condition
SAME_FIELD = {"SN_range": "SN", "SN_ratio": "SN"}


def with_field(text: str, segment: str, n: int, value: str, occurrence: int) -> str:
    """``text`` with field ``n`` of one ``segment`` line (counted cyclically) set to ``value``."""
    eol = "\r" if "\r" in text else "\n"  # a sample may be LF-separated, or start with a BOM
    lines = text.split(eol)
    at = [i for i, line in enumerate(lines) if line.lstrip("\ufeff").startswith(segment + "|")]
    i = at[occurrence % len(at)]
    fields = lines[i].split("|")
    index = n - 1 if segment == "MSH" else n
    fields += [""] * (index + 1 - len(fields))
    fields[index] = value
    lines[i] = "|".join(fields)
    return eol.join(lines)


def test_every_datatype_function_is_reached_by_the_samples() -> None:
    reached = {DATATYPES[name].fn for name in targets()}
    missing = sorted({d.name for d in DATATYPES.values() if d.fn not in reached})
    assert not missing, f"no sample maps a field with {missing}: add one so it is fuzzed"


@st.composite
def fuzzed_messages(draw: st.DrawFn) -> str:
    kinds = targets()
    name = draw(st.sampled_from(sorted(kinds)))
    text, segment, n = draw(st.sampled_from(kinds[name]))
    value = draw(TEXT)
    return with_field(text, segment, n, value, draw(st.integers(0, 20)))


def converts_or_refuses(text: str, note: Callable[[str], None] = event) -> None:
    """``note`` counts outcomes for --hypothesis-show-statistics (a no-op outside hypothesis)."""
    try:
        result = convert(text, validate=True)  # InvalidOutput is not a MessageError: a failure
    except MessageError as exc:
        note(f"refused: {type(exc).__name__}")
        return
    note("converted")
    assert result.bundle["resourceType"] == "Bundle"


# finds, each fixed: (sample, segment, field, value)
FOUND = [
    ("siu_s12", "AIL", 4, '""\\.br\\\n\\'),  # a CWE code with a line break in it
    ("rde_o11", "RXE", 12, "-0500"),  # a negative count of repeats (FHIR unsignedInt)
    ("siu_s12", "SCH", 9, "0"),  # an appointment of no minutes (FHIR positiveInt)
    ("oru_r01", "OBX", 6, "0\n\n\\"),  # a unit code with line breaks (Quantity.code)
]


@fuzz_settings(1000)  # each a conversion with model validation (~ms): ~5 s
@given(text=fuzzed_messages())
def test_a_fuzzed_field_gives_a_valid_bundle_or_a_message_error(text: str) -> None:
    converts_or_refuses(text)


@fuzz_settings(1000)
@given(name=st.sampled_from(["adt_a01", "oru_r01", "siu_s12"]), n=st.integers(3, 21),
       value=TEXT)
@example(name="adt_a01", n=7, value="20240601120000.\u00b2+0000")  # issue 16.14
def test_a_fuzzed_msh_field_gives_a_valid_bundle_or_a_message_error(name: str, n: int,
                                                                    value: str) -> None:
    # MSH-7 becomes Bundle.timestamp, MSH-9/10/12 decide what is mapped: not spec rules
    converts_or_refuses(with_field(sample_text(name), "MSH", n, value, 0))


@pytest.mark.parametrize(("name", "segment", "n", "value"), FOUND)
def test_what_fuzzing_found_converts_or_is_refused(name: str, segment: str, n: int,
                                                  value: str) -> None:
    converts_or_refuses(with_field(sample_text(name), segment, n, value, 0), lambda _: None)


@fuzz_settings(300)  # x 3 conversions with model validation (~ms each)
@given(name=st.sampled_from(sorted(DATATYPES)), value=TEXT)
def test_each_datatype_alone_on_any_value(name: str, value: str) -> None:
    # the same field of every message spec it is used in, one value for all of them
    for text, segment, n in targets().get(name, [])[:3]:
        converts_or_refuses(with_field(text, segment, n, value, 0))
    assert isinstance(Repetition(value, parse(SAMPLE_TEXT).encoding).decoded(3), list)


SAMPLE_TEXT = (SAMPLES / "adt_a01.hl7").read_bytes().decode()
