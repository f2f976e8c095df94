"""Reject answers that would bake a broken or misleading plugin, before any file is written.

Cookiecutter renders this file with the answers and runs it in its own interpreter, so it uses the
standard library only. Every problem is reported at once, each naming the question and the fix;
the exit status is 1 when there is any.
"""

from __future__ import annotations

import json
import re
import sys

# The rendered context, as JSON text: a raw string keeps the escapes for json.loads.
ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")

# The same pattern as fulcrum_sdk.manifest.PluginId / PublisherId (kept in sync by the template tests).
ID_PATTERN = re.compile(r"^[a-z](?:[a-z0-9]|-(?!-)){0,48}[a-z0-9](?!\n)$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\Z")
BRANCH_ID = re.compile(r"^branch-[a-z0-9][a-z0-9-]*\Z")  # as the registry's rule for branch publishers
KINDS = ("department", "branch", "partner")
HOOK_QUESTIONS = ("home_slots", "search", "feed", "transactions")
RESERVED_IDS = frozenset(
    {
        "core", "sdk", "registry", "fulcrum", "admin", "test", "platform", "host", "unknown",
        "wealth-checkup", "pension", "merchant-promo",
    }
)
# Text lands inside TOML and Python string literals; these characters would need escaping there.
FORBIDDEN_CHARS = re.compile(r'["\\\x00-\x1f\x7f]')
TEXT_LIMITS = {"plugin_name": 40, "plugin_name_en": 80, "description": 200, "description_en": 300}


def _text_problems(key: str, value: str, *, required: bool) -> list[str]:
    if not value.strip():
        return [f"{key}: must not be empty / 不能为空"] if required else []
    problems = []
    if value != value.strip():
        problems.append(f"{key}: remove the leading or trailing spaces / 请去掉首尾空格")
    if FORBIDDEN_CHARS.search(value):
        problems.append(f'{key}: must not contain double quotes, backslashes or line breaks (got {value!r})')
    if len(value) > TEXT_LIMITS.get(key, 200):
        problems.append(f"{key}: at most {TEXT_LIMITS.get(key, 200)} characters, got {len(value)}")
    return problems


def _id_problems(key: str, value: str) -> list[str]:
    if ID_PATTERN.match(value):
        return []
    why = ""
    if "--" in value:  # the one rule a developer may not guess: say why
        why = (
            f"; a project's name folds consecutive hyphens into one, so {value!r} would be "
            f"{re.sub('-+', '-', value)!r} (fulcrum-{re.sub('-+', '-', value)}): use single hyphens"
        )
    return [
        f"{key}: {value!r} is not a valid id: use 2-50 lowercase letters, digits and hyphens, "
        f"starting with a letter, not ending with a hyphen and no two in a row (e.g. 'city-coupons'){why}"
    ]


def problems(answers: dict[str, object]) -> list[str]:
    """Every problem with ``answers``, each a line naming the question and how to fix it."""
    found: list[str] = []
    for key in ("plugin_name", "plugin_name_en", "description", "description_en", "owner_name"):
        value = answers.get(key)
        if not isinstance(value, str):
            found.append(f"{key}: must be text")
            continue
        found += _text_problems(key, value, required=key in {"plugin_name", "description", "owner_name"})

    plugin_id = str(answers.get("plugin_id", ""))
    if plugin_id:
        found += _id_problems("plugin_id", plugin_id)
    else:  # the default, a slug of the names, came out empty: they hold no letter or digit it keeps
        named = answers.get("plugin_name_en") or answers.get("plugin_name")
        found.append(
            f"plugin_id: empty, and the plugin's names give none to propose ({named!r}); answer the plugin "
            "id question (or pass -x plugin_id=city-coupons): 2-50 lowercase letters, digits and hyphens"
        )
    if plugin_id in RESERVED_IDS:
        found.append(
            f"plugin_id: {plugin_id!r} is reserved for the platform or a first-party plugin; "
            "choose another id"
        )
    elif plugin_id.startswith("fulcrum-"):
        found.append(
            f"plugin_id: drop the 'fulcrum-' prefix ({plugin_id[len('fulcrum-'):]!r}); "
            "the distribution is already named fulcrum-<plugin_id>"
        )

    found += _id_problems("publisher_id", str(answers.get("publisher_id", "")))

    kind = answers.get("publisher_kind")
    publisher_id = str(answers.get("publisher_id", ""))
    if kind not in KINDS:
        found.append(f"publisher_kind: {kind!r} is not a publisher kind; choose one of {', '.join(KINDS)}")
    elif kind == "branch" and not BRANCH_ID.match(publisher_id):
        found.append(
            f"publisher_id: a branch publishes as branch-<code>, its branch file's name "
            f"(branches/0755.toml: 'branch-0755'), not {publisher_id!r}; under another id no branch can "
            "switch the plugin on"
        )
    elif kind != "branch" and publisher_id.startswith("branch-"):
        found.append(f"publisher_id: branch-<code> ids are for branches (publisher_kind branch), not {kind}")

    for key in HOOK_QUESTIONS:
        if not isinstance(answers.get(key), bool):
            found.append(f"{key}: answer yes or no, got {answers.get(key)!r}")
    if not any(answers.get(key) is True for key in HOOK_QUESTIONS):
        found.append(
            "hooks: choose at least one of home_slots, search, feed, transactions; "
            "a plugin that implements no hook does nothing"
        )

    email = str(answers.get("owner_email", ""))
    if not EMAIL_PATTERN.match(email) or FORBIDDEN_CHARS.search(email):
        found.append(f"owner_email: {email!r} is not an email address")
    return found


def main() -> int:
    """Print every problem to stderr and return 1, or return 0 when the answers are good."""
    found = problems(ANSWERS)
    if not found:
        return 0
    print("The Fulcrum plugin template cannot use these answers / 以下回答有误:", file=sys.stderr)  # noqa: T201
    for line in found:
        print(f"  - {line}", file=sys.stderr)  # noqa: T201
    return 1


if __name__ == "__main__":
    sys.exit(main())
