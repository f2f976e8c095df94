"""Publishers: created once, validated, verified by the platform team, audited."""

from __future__ import annotations

from typing import Any

import pytest
from fulcrum_registry import AlreadyExists, InvalidInput, NewPublisher, NotFound, RegistryService
from fulcrum_sdk.manifest import ID_WORDS


def test_create_and_read(registry: RegistryService) -> None:
    """A created publisher reads back with what was given, unverified by default."""
    made = registry.create_publisher(
        NewPublisher(
            id="branch-028", name="成都分行", name_en="Chengdu branch", kind="branch",
            contact="ops@cd.example",
        ),
        actor="platform",
    )
    assert made.verified is False
    assert registry.get_publisher("branch-028") == made
    assert [p.id for p in registry.list_publishers().items] == [
        "branch-028",
        "branch-0755",
        "fund-partner",
        "pension-dept",
    ]


def test_duplicate_id_is_a_conflict(registry: RegistryService) -> None:
    """The same id twice raises AlreadyExists and changes nothing."""
    before = registry.policy_version()
    with pytest.raises(AlreadyExists):
        registry.create_publisher(
            {"id": "pension-dept", "name": "x", "kind": "department", "contact": "a@b.c"}, actor="platform"
        )
    assert registry.policy_version() == before


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"id": "Bad Id", "name": "x", "kind": "branch", "contact": "a@b.c"}, "id"),
        ({"id": "ok-id", "name": "", "kind": "branch", "contact": "a@b.c"}, "name"),
        ({"id": "ok-id", "name": "x", "kind": "bank", "contact": "a@b.c"}, "kind"),
        ({"id": "ok-id", "name": "x", "kind": "branch", "contact": "nobody"}, "contact"),
        ({"id": "ok-id", "name": "x", "kind": "branch"}, "contact"),
        # $ alone matches before a last newline in Python's re: a publisher beside "ok-id", alike in print
        ({"id": "ok-id\n", "name": "x", "kind": "branch", "contact": "a@b.c"}, "id"),
        ({"id": "ok-id", "name": "x", "kind": "branch", "contact": "a@b.c\n"}, "contact"),
    ],
)
def test_invalid_publishers_name_the_field(
    registry: RegistryService, data: dict[str, Any], field: str
) -> None:
    """Each malformed field is refused by name, whether given as a dict or as an unchecked struct."""
    with pytest.raises(InvalidInput) as caught:
        registry.create_publisher(data, actor="platform")
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"contact": "ops at bank"},
            "must be an e-mail address that reaches the publisher, such as ops@bank.example (no spaces)",
        ),
        ({"id": "Bad Id"}, f"must be {ID_WORDS}"),
        ({"id": "city--dept"}, f"must be {ID_WORDS}"),
    ],
    ids=["contact", "id", "two-hyphens"],
)
def test_a_value_not_matching_its_pattern_is_refused_in_words(
    registry: RegistryService, data: dict[str, str], problem: str
) -> None:
    """A bad contact quoted msgspec's regular expression; the refusal now says what a valid one is."""
    valid = {"id": "ok-id", "name": "x", "kind": "branch", "contact": "a@b.c"}
    with pytest.raises(InvalidInput) as caught:
        registry.create_publisher(valid | data, actor="platform")
    assert (caught.value.field, caught.value.problem) == (next(iter(data)), problem)


def test_unchecked_struct_is_validated_too(registry: RegistryService) -> None:
    """A NewPublisher built in Python (msgspec does not check constraints on __init__) is still checked."""
    with pytest.raises(InvalidInput) as caught:
        registry.create_publisher(NewPublisher(id="x y", name="n", kind="branch", contact="a@b.c"), actor="p")
    assert caught.value.field == "id"


def test_verification_is_audited_once(registry: RegistryService) -> None:
    """Verifying records one event; verifying again changes nothing."""
    before = registry.policy_version()
    assert registry.set_publisher_verified("branch-0755", True, actor="platform").verified is True
    registry.set_publisher_verified("branch-0755", True, actor="platform")
    assert registry.policy_version() == before + 1
    with pytest.raises(NotFound):
        registry.set_publisher_verified("ghost", True, actor="platform")
    with pytest.raises(NotFound):
        registry.get_publisher("ghost")


def test_a_blank_name_is_refused(registry: RegistryService) -> None:
    """A publisher's name must show something: spaces alone are refused naming the field."""
    body = {"id": "blank-dept", "name": "   ", "kind": "department", "contact": "ops@bank.example"}
    with pytest.raises(InvalidInput) as refused:
        registry.create_publisher(body, actor="platform")
    assert refused.value.field == "name"


@pytest.mark.parametrize(
    ("publisher_id", "kind", "says"),
    [
        ("shenzhen", "branch", "a branch publishes as branch-<code>"),
        ("sz-branch", "branch", "a branch publishes as branch-<code>"),
        ("branch-0571", "partner", "branch-<code> ids are for branches (kind branch), not a partner"),
        ("branch-hq", "department", "not a department"),
    ],
)
def test_a_branch_publishes_as_branch_code_and_only_a_branch_does(
    registry: RegistryService, publisher_id: str, kind: str, says: str
) -> None:
    """A branch publisher under another id could never run a plugin (the host enables a branch plugin
    only in the file of the branch whose publisher id it is), and a partner as branch-0755 took the
    branch's name: both are refused naming ``id``, and nothing is stored."""
    with pytest.raises(InvalidInput) as caught:
        registry.create_publisher(
            {"id": publisher_id, "name": "x", "kind": kind, "contact": "ops@bank.example"}, actor="p"
        )
    assert caught.value.field == "id"
    assert says in caught.value.problem
    assert publisher_id not in [p.id for p in registry.list_publishers().items]
