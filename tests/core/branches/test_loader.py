"""Parsing branch files: every malformed entry is reported with its file and key path."""

from __future__ import annotations

import pytest
from fulcrum_core.branches import branch_code_of, parse_branch, parse_hq
from fulcrum_sdk.manifest import ID_WORDS
from msgspec import UNSET

F = "branches/0755.toml"


def _lines(text: str, *, hq: bool = False) -> list[str]:
    parse = parse_hq if hq else parse_branch
    _, problems = parse(text.encode(), "branches/hq.toml" if hq else F)
    return [p.line for p in problems]


def test_a_good_file_parses_into_typed_entries() -> None:
    """A valid file yields typed entries, with unset fields left UNSET for layering."""
    parsed, problems = parse_branch(
        b'name = { "zh-CN" = "\xe6\xb7\xb1\xe5\x9c\xb3\xe5\x88\x86\xe8\xa1\x8c" }\n'
        b'[plugins.merchant-promo]\nrollout = 30\npin = { "home.banner/v1" = 2 }\nallow = ["c1"]\n',
        F,
    )
    assert problems == []
    assert parsed is not None
    entry = parsed.plugins["merchant-promo"]
    assert (entry.rollout, entry.pin, entry.allow, entry.enabled) == (
        30,
        {"home.banner/v1": 2},
        ("c1",),
        UNSET,
    )
    assert parsed.name is not None
    assert parsed.name.zh_CN == "深圳分行"


def test_invalid_toml_names_the_file() -> None:
    """Text that is not TOML is one problem naming the file and the parser's position."""
    (line,) = _lines("[plugins.x\nenabled = true")
    assert line.startswith(f"{F}: not valid TOML:")


def test_a_file_that_is_not_utf8_names_the_file() -> None:
    """A file saved in another encoding (GBK here) is one problem naming the file, never a traceback."""
    _, problems = parse_branch('name = "深圳分行"\n'.encode("gbk"), F)
    assert [p.line for p in problems] == [f"{F}: not UTF-8 text: invalid continuation byte at byte 8"]


def test_duplicate_keys_are_refused() -> None:
    """A plugin configured twice in one file is a TOML error, not a silent override."""
    (line,) = _lines("[plugins.pension]\nenabled = true\n[plugins.pension]\nenabled = false\n")
    assert "not valid TOML" in line


def test_wrong_types_are_reported_with_key_paths() -> None:
    """A wrong type names the exact key inside the plugin entry."""
    assert _lines('[plugins.merchant-promo]\nrollout = "30"\n') == [
        f"{F}: plugins.merchant-promo.rollout: must be a whole number"
    ]


def test_every_bad_entry_is_reported_not_just_the_first() -> None:
    """Problems in several entries (and several settings of one entry) are all reported."""
    lines = _lines(
        "[plugins.a-plugin]\nenabled = 1\n"
        '[plugins.b-plugin]\nsettings = { ratio = 0.5, limit = [1], ok = "x" }\n'
        '[plugins.c-plugin]\npin = { "home.banner/v1" = "two" }\n'
    )
    assert lines == [
        f"{F}: plugins.a-plugin.enabled: must be true or false",
        f"{F}: plugins.b-plugin.settings.ratio: must be true or false, a whole number or text",
        f"{F}: plugins.b-plugin.settings.limit: must be true or false, a whole number or text",
        f'{F}: plugins.c-plugin.pin."home.banner/v1": must be a whole number',
    ]


def test_unknown_keys_are_named() -> None:
    """Unknown top-level and per-plugin keys are reported with the keys that are allowed."""
    lines = _lines("colour = 1\n[plugins.pension]\nrolout = 30\n")
    assert lines[0] == f"{F}: colour: unknown key; expected one of: name, plugins"
    assert lines[1].startswith(
        f"{F}: plugins.pension.rolout: unknown key; expected one of: enabled, version, rollout"
    )


def test_every_problem_of_an_entry_is_reported_in_words() -> None:
    """``enabled = "no"`` said "Expected `bool`, got `str`" and stopped there: a second mistake in the
    entry (``rolout``) was never reported. Each key is judged, in words, with a did-you-mean."""
    assert _lines('[plugins.pension]\nenabled = "no"\nrolout = 30\n') == [
        f"{F}: plugins.pension.enabled: must be true or false",
        f"{F}: plugins.pension.rolout: unknown key; expected one of: enabled, version, rollout, allow, pin, "
        "settings; did you mean rollout?",
    ]
    (line,) = _lines("nmae = 1\n")
    assert line == f"{F}: nmae: unknown key; expected one of: name, plugins; did you mean name?"


def test_a_name_that_is_not_a_table_says_what_it_must_be() -> None:
    """``name = "Shanghai"`` said "Expected `object`": the names by language go in a table."""
    assert _lines('name = "Shanghai"\n') == [
        f'{F}: name: must be a table of names by language, such as {{ zh-CN = "上海分行", en = "Shanghai" }}'
    ]


def test_mandatory_belongs_to_hq_only() -> None:
    """A branch file cannot declare a plugin mandatory; the message says where it belongs."""
    assert _lines("[plugins.pension]\nmandatory = true\n") == [
        f"{F}: plugins.pension.mandatory: only hq.toml can make a plugin mandatory"
    ]
    assert _lines("[plugins.pension]\nmandatory = true\n", hq=True) == []


def test_bad_plugin_ids_and_non_table_entries() -> None:
    """A plugin id that cannot exist, or an entry that is not a table, is reported by key."""
    lines = _lines('plugins = { "Bad_Id" = {}, pension = 3 }\n')
    assert lines == [
        f"{F}: plugins.Bad_Id: not a plugin id: must be {ID_WORDS}",
        f"{F}: plugins.pension: expected a table, got int",
    ]


def test_a_plugin_id_with_two_hyphens_in_a_row_is_refused_in_the_sdks_words() -> None:
    """``city--coupons`` is no plugin id (a project name folds it into city-coupons), as the SDK says."""
    lines = _lines('plugins = { "city--coupons" = {} }\n')
    assert lines == [f"{F}: plugins.city--coupons: not a plugin id: must be {ID_WORDS}"]
    assert "no two hyphens in a row" in ID_WORDS


def test_name_needs_chinese_text() -> None:
    """The branch's display name requires zh-CN."""
    assert _lines('name = { en = "Shenzhen" }\n') == [f"{F}: name.zh-CN: required key is missing"]


def test_allow_list_entries_are_checked_by_index() -> None:
    """An empty customer id in an allow-list is reported at its index."""
    (line,) = _lines('[plugins.pension]\nallow = ["c1", ""]\n')
    assert line.startswith(f"{F}: plugins.pension.allow[1]: must not be empty")


@pytest.mark.parametrize(
    ("name", "code"), [("0755.toml", "0755"), ("hq.toml", None), ("sz-pilot.toml", "sz-pilot")]
)
def test_branch_code_from_file_name(name: str, code: str | None) -> None:
    """The branch code is the file name's stem; hq.toml is the HQ file."""
    assert branch_code_of(f"some/dir/{name}") == code


@pytest.mark.parametrize("name", ["0755.json", "Shenzhen.toml", "hq.branch.toml", "-x.toml", ".toml"])
def test_bad_file_names_are_refused(name: str) -> None:
    """A file name that is neither hq.toml nor <code>.toml is refused with the naming rule."""
    with pytest.raises(ValueError, match=r"<code>\.toml"):
        branch_code_of(name)


def test_a_byte_order_mark_and_windows_line_ends_read_as_the_same_file() -> None:
    """A file a Windows editor saved (a UTF-8 byte-order mark, CRLF) parses as the same file: the mark
    was "not valid TOML: Invalid statement (at line 1, column 1)", naming nothing a branch team sees."""
    text = '# 深圳\n[plugins.merchant-promo]\nenabled = true\npin = { "home.banner/v1" = 2 }\n'
    plain, plain_problems = parse_branch(text.encode(), F)
    marked, problems = parse_branch(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode(), F)
    assert plain_problems == problems == []
    assert marked == plain
    hq, hq_problems = parse_hq(b"\xef\xbb\xbf[plugins.pension]\n", "branches/hq.toml")
    assert hq_problems == []
    assert hq is not None
    assert "pension" in hq.plugins


@pytest.mark.parametrize("hq", [False, True])
def test_a_branch_name_that_would_read_reversed_is_refused_naming_key_and_character(hq: bool) -> None:
    """The branch's name is display text: a bidi isolate (or any control character) in it is refused
    with the key and the character, while its plugin entries are still read."""
    parse = parse_hq if hq else parse_branch
    file = "branches/hq.toml" if hq else F
    parsed, problems = parse(
        'name = { "zh-CN" = "深圳分行", en = "Shenzhen \u2066branch" }\n[plugins.pension]\nenabled = true\n'
        .encode(),
        file,
    )
    assert [p.line for p in problems] == [
        f"{file}: name.en: U+2066 LEFT-TO-RIGHT ISOLATE at index 9 is not allowed in display text"
    ]
    assert parsed is not None
    assert parsed.name is None
    assert list(parsed.plugins) == ["pension"]


@pytest.mark.parametrize("hq", [False, True])
def test_settings_and_pilots_that_would_read_otherwise_are_refused_naming_key_and_character(hq: bool) -> None:
    """A setting's value reaches the customer (a banner's title is made of it), the staff's view of the
    configuration and the plugin's logs; its key and a pilot's customer number the staff's view and the
    check's lines. Each is one line of display text: a bidi control, a control character or a line break
    is refused with the file, the key and the character, and the entry is not applied."""
    parse = parse_hq if hq else parse_branch
    file = "branches/hq.toml" if hq else F
    text = (
        '[plugins.merchant-promo]\nenabled = true\nallow = ["c-0755-001", "c-0755-\u202e100"]\n'
        'settings = { city = "深圳\u2028福田", "title\u2067" = "春季", note = "a\\nb",'
        ' ok = "南山 👨\u200d👩\u200d👧" }\n'
        "[plugins.pension]\nenabled = true\n"
    )
    parsed, problems = parse(text.encode(), file)
    assert sorted(p.line for p in problems) == sorted([
        f"{file}: plugins.merchant-promo.allow[1]: U+202E RIGHT-TO-LEFT OVERRIDE at index 7 is not allowed "
        "in display text",
        f"{file}: plugins.merchant-promo.settings.city: U+2028 LINE SEPARATOR at index 2 is not allowed in "
        "display text",
        f'{file}: plugins.merchant-promo.settings."title\\u2067": key: U+2067 RIGHT-TO-LEFT ISOLATE at '
        "index 5 is not allowed in display text",
        f"{file}: plugins.merchant-promo.settings.note: U+000A LINE FEED at index 1 is not allowed in "
        "display text; a setting is one line",
    ])
    assert parsed is not None
    assert list(parsed.plugins) == ["pension"]


def test_a_branch_name_in_any_script_with_marks_and_emoji_is_read() -> None:
    """Chinese, an emoji sequence joined by ZWJ and an RLM are ordinary display text."""
    text = 'name = { "zh-CN" = "深圳分行 👨\u200d👩\u200d👧", en = "Shenzhen \u200fbranch" }\n'
    parsed, problems = parse_branch(text.encode(), F)
    assert problems == []
    assert parsed is not None
    assert parsed.name is not None
    assert parsed.name.zh_CN == "深圳分行 👨\u200d👩\u200d👧"
