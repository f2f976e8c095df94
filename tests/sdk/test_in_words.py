"""msgspec's refusals in words: the fields there are, the values allowed, what a value must be."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import pytest
from fulcrum_sdk._in_words import NOT_UTF8, bound_problem, dotted, in_words, not_json


class Inner(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True


class Outer(msgspec.Struct, forbid_unknown_fields=True):
    plan_id: Literal["starter", "plus"] = "starter"
    amount_fen: int | None = None
    inner: Inner = msgspec.field(default_factory=Inner)
    reasons: list[str] = msgspec.field(default_factory=list)


@pytest.mark.parametrize(
    ("data", "path", "problem"),
    [
        ({"plan_id": "starer"}, "plan_id", "'starer' is not one of: starter, plus; did you mean starter?"),
        ({"amount_fen": 1.5}, "amount_fen", "must be a whole number of fen or null"),
        ({"inner": {"enabled": "no"}}, "inner.enabled", "must be true or false"),
        ({"inner": "x"}, "inner", "must be a table"),
        ({"inner": {"enabeld": True}}, "inner.enabeld", "is not a field here (the fields are: enabled); "
         "did you mean enabled?"),
        ({"reasons": ["a", 2]}, "reasons[1]", "must be text"),
    ],
)
def test_msgspec_refusals_in_words(data: dict[str, Any], path: str, problem: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(data, Outer)
    assert in_words(Outer, str(caught.value), an_object="a table") == (path, problem)


def test_list_indexes_are_dotted_as_the_project_names_fields() -> None:
    assert dotted("reasons[1]") == "reasons.1"
    assert dotted("a[0].b[12]") == "a.0.b.12"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"a": "b', "the body ends before the JSON does (a closing quote, bracket or brace is missing)"),
        (b"[1, 2", "the body ends before the JSON does (a closing quote, bracket or brace is missing)"),
        (b"{bad", "JSON is malformed: object keys must be strings (byte 1)"),
    ],
)
def test_a_body_that_is_not_json_is_refused_in_words(raw: bytes, problem: str) -> None:
    """msgspec's "Input data was truncated" says what is missing; its other words stay, after the lead."""
    with pytest.raises(msgspec.DecodeError) as refused:
        msgspec.json.decode(raw)
    assert not_json(str(refused.value)) == f"the body is not valid JSON: {problem}"
    assert not_json(NOT_UTF8) == "the body is not valid JSON: a string in it is not UTF-8"


_Code = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}-[0-9]{4}(?!\n)$", description="a code, SZ-2026")]
_Region = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}(?!\n)$", description="two capitals")]


class Voucher(msgspec.Struct, forbid_unknown_fields=True):
    """A plugin's own parameters: one pattern says what it takes, one says nothing."""

    code: _Code
    codes: list[_Region] | None = None
    plain: Annotated[str, msgspec.Meta(pattern=r"^x(?!\n)$")] | None = None


@pytest.mark.parametrize(
    ("data", "path", "problem"),
    [
        ({"code": "sz-2026"}, "code", "must be a code, SZ-2026"),
        ({"code": "SZ-2026", "codes": ["SZ", "s"]}, "codes[1]", "must be two capitals"),
    ],
)
def test_a_pattern_of_a_plugins_own_is_said_in_its_fields_description(
    data: dict[str, Any], path: str, problem: str
) -> None:
    """A plugin's parameters are refused in the words their field's ``Meta(description=...)`` gives, not
    msgspec's regular expression."""
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert(data, Voucher)
    assert in_words(Voucher, str(refused.value)) == (path, problem)


def test_a_pattern_without_words_keeps_msgspecs_message() -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert({"code": "SZ-2026", "plain": "y"}, Voucher)
    assert in_words(Voucher, str(refused.value))[1].startswith("Expected `str` matching regex")


class Bounded(msgspec.Struct):
    count: Annotated[int, msgspec.Meta(ge=1)] = 1
    share: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.5
    step: Annotated[int, msgspec.Meta(multiple_of=5)] = 5
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=3)] = "a"
    tags: Annotated[list[str], msgspec.Meta(min_length=2, max_length=3)] = msgspec.field(
        default_factory=lambda: ["a", "b"]
    )
    extra: Annotated[dict[str, int], msgspec.Meta(max_length=1)] = msgspec.field(default_factory=dict)


@pytest.mark.parametrize(
    ("data", "path", "problem"),
    [
        ({"count": 0}, "count", "must be at least 1"),
        ({"share": 0.0}, "share", "must be more than 0.0"),
        ({"share": 1.5}, "share", "must be at most 1.0"),
        ({"step": 7}, "step", "must be a multiple of 5"),
        ({"note": ""}, "note", "must not be empty"),
        ({"note": "abcd"}, "note", "must be at most 3 characters"),
        ({"tags": ["a"]}, "tags", "must hold at least 2 items"),
        ({"extra": {"a": 1, "b": 2}}, "extra", "must hold at most 1 entry"),
    ],
)
def test_bounds_and_lengths_in_words(data: dict[str, Any], path: str, problem: str) -> None:
    """``Expected `int` >= 1`` and ``Expected `str` of length <= 3`` name a Python type and not what was
    sent: they say what the value must be."""
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(data, Bounded)
    assert in_words(Bounded, str(caught.value)) == (path, problem)


def test_a_length_says_how_many_the_value_has() -> None:
    """Given the value refused, a length says how long it is, so whoever wrote it knows how much to cut."""
    assert bound_problem("Expected `str` of length <= 2048", "x" * 2051) == (
        "must be at most 2048 characters; it has 2051"
    )
    listed = bound_problem("Expected `array` of length <= 3", [1, 2, 3, 4])
    assert listed == "must hold at most 3 items; it has 4"
    assert bound_problem("Expected `str` matching regex '^a$'") is None
