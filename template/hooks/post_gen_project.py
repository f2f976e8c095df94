"""Finish the baked project: drop the modules and tests of hooks not chosen, and record the answers.

``.cookiecutter.json`` is in cookiecutter's replay format: the answers and the values derived from
them, no machine paths, so ``cookiecutter --replay-file .cookiecutter.json TEMPLATE`` bakes the same
project again.
Runs in cookiecutter's interpreter with the project directory as the working directory.
"""

from __future__ import annotations

import json
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | tojson }}""")

PACKAGE = Path("src") / ANSWERS["__package"]
# For each hook question: the files that exist only when it is answered yes.
HOOK_FILES = {
    "home_slots": [PACKAGE / "home.py", Path("tests/test_home.py")],
    "search": [PACKAGE / "search.py", Path("tests/test_search.py")],
    "feed": [PACKAGE / "feeds.py", Path("tests/test_feeds.py")],
    "transactions": [PACKAGE / "orders.py", Path("tests/test_orders.py")],
}


def main() -> None:
    """Remove the unchosen hooks' modules and tests, and write ``.cookiecutter.json``."""
    for question, paths in HOOK_FILES.items():
        if ANSWERS[question] is not True:
            for path in paths:
                path.unlink()
    if ANSWERS["search"] is not True and ANSWERS["transactions"] is not True:
        (PACKAGE / "plans.py").unlink()  # only search, orders and the pages use the plans
    if not any(ANSWERS[q] is True for q in ("home_slots", "search", "feed")):
        for path in (PACKAGE / "pages.py", Path("tests/test_pages.py")):
            path.unlink()  # no hook hands out a deep link, so there is no page to open
    # Derived ``__`` values are kept: a replay renders none of them. ``_`` keys hold machine paths.
    answers = {k: v for k, v in ANSWERS.items() if k.startswith("__") or not k.startswith("_")}
    Path(".cookiecutter.json").write_text(
        json.dumps({"cookiecutter": answers}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
