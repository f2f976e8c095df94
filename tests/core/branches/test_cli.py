"""``fulcrum branch check``: every problem printed as a line, exit 1 on any, 0 when clean."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fulcrum_core.cli.branch import branch, installed_plugins
from fulcrum_sdk.manifest import ID_WORDS

Write = Callable[[str, str], Path]
Run = Callable[..., Result]

APPROVED_TOML = """
[wealth-checkup]
kind = "department"
publisher = "wealth-dept"
versions = ["1.0.0"]
slots = ["home.banner/v1", "home.kingkong/v1"]

[pension]
kind = "department"
publisher = "pension-dept"
versions = ["0.3.0"]
slots = ["home.kingkong/v1", "home.notice/v1"]

[merchant-promo]
kind = "partner"
publisher = "citylife"
versions = ["0.1.0"]
slots = ["home.banner/v1"]
"""


@pytest.fixture
def approved_file(tmp_path: Path) -> Path:
    """An exported approved set, as ``--approved`` takes it."""
    path = tmp_path / "approved.toml"
    path.write_text(APPROVED_TOML, encoding="utf-8")
    return path


@pytest.fixture
def run(approved_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    """Invoke ``branch check`` with ``--approved`` and default settings; returns the click Result."""
    monkeypatch.delenv("FULCRUM_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def _run(*files: str | Path, approved: bool = True) -> Result:
        args = ["check", *(str(f) for f in files)]
        if approved:
            args += ["--approved", str(approved_file)]
        return CliRunner().invoke(branch, args)

    return _run


def test_clean_files_exit_zero(run: Run, write: Write, hq_text: str) -> None:
    """Valid HQ and branch files pass with exit code 0."""
    hq = write("hq.toml", hq_text.replace('api_token = "$env:FULCRUM_SECRET_PROMO_TOKEN", ', ""))
    branch_file = write("0755.toml", "[plugins.merchant-promo]\nenabled = true\nrollout = 100\n")
    result = run(hq, branch_file)
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: 2 file(s) checked\n"


def test_every_problem_is_printed_and_exit_is_one(run: Run, write: Write, hq_text: str) -> None:
    """Each problem is one line naming file and key; a summary goes to stderr; exit code 1."""
    write("hq.toml", hq_text)
    path = write(
        "0755.toml", '[plugins.merchant-promo]\nenabled = true\nrollout = 130\nsettings = { token = "abc" }\n'
    )
    result = run(path)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}: plugins.merchant-promo.rollout: 130 is out of range 0–100",
        f"{path}: plugins.merchant-promo.settings.token: holds a literal secret; "
        'use a reference: "$env:FULCRUM_SECRET_NAME" or "$file:PATH"',
    ]
    assert result.stderr == "2 problem(s) in 1 file(s)\n"


def test_a_setting_or_plugin_key_that_would_read_otherwise_is_a_line_that_does_not(
    run: Run, write: Write, hq_text: str
) -> None:
    """A setting's value with a bidi override fails the check naming file, key and character; a key
    holding one is named escaped, so the check's own line reads as it holds."""
    write("hq.toml", hq_text)
    path = write(
        "0755.toml",
        '[plugins.merchant-promo]\nenabled = true\nsettings = { city = "深圳\u202e福田" }\n'
        '[plugins."promo\u202e"]\nenabled = true\n',
    )
    result = run(path)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}: plugins.merchant-promo.settings.city: U+202E RIGHT-TO-LEFT OVERRIDE at index 2 is not "
        "allowed in display text",
        f'{path}: plugins."promo\\u202e": not a plugin id: must be {ID_WORDS}',
    ]
    assert "\u202e" not in result.stdout


def test_branch_file_is_checked_against_the_hq_file_beside_it(run: Run, write: Write, hq_text: str) -> None:
    """Checking a branch file alone still catches switching off what the sibling hq.toml makes mandatory."""
    write("hq.toml", hq_text)
    path = write("028.toml", "[plugins.wealth-checkup]\nenabled = false\n")
    result = run(path)
    assert result.exit_code == 1
    assert "plugins.wealth-checkup.enabled: 'wealth-checkup' is mandatory in hq.toml" in result.stdout


def test_problems_of_the_sibling_hq_file_are_reported(run: Run, write: Write) -> None:
    """A broken hq.toml next to the checked file is reported too: the pair is what will run."""
    hq = write("hq.toml", "[plugins.pension]\nrollout = 101\n")
    path = write("0755.toml", "")
    result = run(path)
    assert result.exit_code == 1
    assert result.stdout == f"{hq}: plugins.pension.rollout: 101 is out of range 0–100\n"


def test_unknown_plugin_and_not_toml(run: Run, write: Write) -> None:
    """Files in several states: an unknown plugin, a TOML syntax error, a badly named file."""
    write("hq.toml", "")
    a = write("0755.toml", "[plugins.ghost]\n")
    b = write("021.toml", "[plugins\n")
    c = write("Shanghai.toml", "")
    result = run(a, b, c)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{a}: plugins.ghost: unknown plugin 'ghost'")
    assert lines[1].startswith(f"{b}: not valid TOML")
    assert lines[2].startswith(f"{c}: a branch file is named <code>.toml")
    assert result.stderr == "3 problem(s) in 3 file(s)\n"


def test_files_the_host_never_reads_are_skipped_with_a_note(run: Run, write: Write, hq_text: str) -> None:
    """``branch check branches/*`` failed on branches/README.md, which the host ignores: it is skipped,
    with a note on stderr; a name close to a branch file's (0755.toml.bak) is still reported."""
    hq = write("hq.toml", hq_text.replace('api_token = "$env:FULCRUM_SECRET_PROMO_TOKEN", ', ""))
    readme = write("README.md", "# Branch files\n")
    hidden = write(".0755.toml.swp", "garbage")
    result = run(hq, readme, hidden)
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: 1 file(s) checked\n"
    assert f"note: skipped {readme}: the host reads only hq.toml and <code>.toml files" in result.stderr
    assert f"note: skipped {hidden}:" in result.stderr
    backup = write("0755.toml.bak", "")
    kept = run(hq, readme, backup)
    assert kept.exit_code == 1
    assert str(backup) in kept.stdout
    assert str(readme) not in kept.stdout


def test_the_branch_directory_is_checked_as_its_files(run: Run, write: Write, hq_text: str) -> None:
    """``branch check branches`` (the directory) checks what ``branches/*`` would; before, click refused
    it ("is a directory") without saying what to name. Its README is skipped; a directory holding no
    file is an error naming it."""
    hq = write("hq.toml", hq_text.replace('api_token = "$env:FULCRUM_SECRET_PROMO_TOKEN", ', ""))
    write("README.md", "# Branch files\n")
    result = run(hq.parent)
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: 1 file(s) checked\n"
    bad = write("0755.toml", "[plugins.ghost]\nenabled = true\n")
    failed = run(hq.parent)
    assert failed.exit_code == 1
    assert failed.stdout.startswith(f"{bad}: plugins.ghost: unknown plugin 'ghost'")
    empty = hq.parent / "empty"
    empty.mkdir()
    nothing = run(empty)
    assert nothing.exit_code == 1
    assert nothing.stderr == (
        f"{empty}: holds no file; name a branch directory or its files (branches/*.toml)\n"
    )


def test_naming_only_files_the_host_never_reads_is_an_error(run: Run, write: Write, hq_text: str) -> None:
    """``branch check README.md`` checked nothing and exited 0, so a team checking the wrong file was told
    all was well: a file the host never reads, named without any branch file, is an error saying so."""
    write("hq.toml", hq_text)
    readme = write("README.md", "# Branch files\n")
    hidden = write(".0755.toml.swp", "garbage")
    result = run(readme)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"{readme}: not a branch configuration file: the host reads only hq.toml and <code>.toml files "
        "(such as 0755.toml) in its branch directory; name those\n"
    )
    both = run(readme, hidden)
    assert both.exit_code == 1
    assert [line.split(": ")[0] for line in both.stderr.splitlines()] == [str(readme), str(hidden)]


def test_missing_file_is_a_usage_error(run: Run) -> None:
    """A path that does not exist is refused by the command line itself (exit 2)."""
    result = run("nope/0755.toml")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_no_files_is_a_usage_error(run: Run) -> None:
    """At least one file is required."""
    assert run().exit_code == 2


def test_bad_approved_file_is_a_usage_error(run: Run, write: Write, tmp_path: Path) -> None:
    """An ``--approved`` file that does not describe approved plugins is refused with exit 2."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[pension]\nkind = "charity"\npublisher = "x"\n', encoding="utf-8")
    path = write("0755.toml", "")
    result = CliRunner().invoke(branch, ["check", str(path), "--approved", str(bad)])
    assert result.exit_code == 2
    assert "--approved" in result.stderr
    assert "kind" in result.stderr


def test_an_unknown_key_in_the_approved_file_is_refused(write: Write, tmp_path: Path) -> None:
    """``version`` for ``versions`` was dropped, and every file naming the plugin said it had no approved
    release: the misspelt key is named instead."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[pension]\nkind = "department"\npublisher = "x"\nversion = ["0.3.0"]\n', encoding="utf-8")
    path = write("0755.toml", "")
    result = CliRunner().invoke(branch, ["check", str(path), "--approved", str(bad)])
    assert result.exit_code == 2, result.output
    assert "--approved" in result.stderr
    assert "unknown field `version`" in result.stderr


def _fake_plugin(site: Path, package: str, dist: str, manifest: str) -> None:
    """Lay out an installed distribution with a ``fulcrum`` entry point and a manifest in its RECORD."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text("", encoding="utf-8")
    (site / package / "fulcrum-plugin.toml").write_text(manifest, encoding="utf-8")
    info = site / f"{package}-1.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[fulcrum]\n{dist} = {package}\n", encoding="utf-8")
    (info / "RECORD").write_text(
        f"{package}/__init__.py,,\n{package}/fulcrum-plugin.toml,,\n", encoding="utf-8"
    )


MANIFEST = """
id = "fake-local"
name = { "zh-CN" = "本地服务" }
description = { "zh-CN" = "测试用的分行插件" }
publisher = "branch-0755"
kind = "branch"
sdk = ">=0.1"
hooks = ["home_slot_offers"]
slots = ["home.kingkong/v1"]
owner = { name = "Shenzhen team", email = "team@example.com" }
[scopes.required]
"slot:home.kingkong" = "shows a local entry"
"""


def test_installed_plugins_are_the_default_approved_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Write
) -> None:
    """Without ``--approved``, installed plugins are the approved set; a broken manifest is a warning."""
    site = tmp_path / "site"
    _fake_plugin(site, "fake_local", "fake-local", MANIFEST)
    _fake_plugin(site, "fake_broken", "fake-broken", 'name = "no id"\n')
    monkeypatch.syspath_prepend(str(site))
    approved, warnings = installed_plugins()
    assert approved["fake-local"].kind == "branch"
    assert approved["fake-local"].versions == ("1.2.0",)
    assert any(w.startswith("plugin 'fake-broken' skipped:") for w in warnings)

    # Default settings, away from any demo database in the working directory (its registry would
    # answer instead of the installed plugins).
    for name in ("FULCRUM_CONFIG", "FULCRUM_STATE_DIR", "FULCRUM_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    ours = write("0755.toml", "[plugins.fake-local]\nenabled = true\n")
    theirs = write("021.toml", "[plugins.fake-local]\nenabled = true\n")
    result = CliRunner().invoke(branch, ["check", str(ours), str(theirs)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{theirs}: plugins.fake-local: 'fake-local' is a branch plugin of 'branch-0755'; "
        "branch 021 cannot enable it"
    ]
    assert "warning: plugin 'fake-broken' skipped" in result.stderr


def test_an_entry_that_does_nothing_is_refused(run: Run, write: Write, hq_text: str) -> None:
    """A rollout for a plugin HQ has off, without ``enabled = true``, fails the check saying what to add."""
    write("hq.toml", hq_text.replace('api_token = "$env:FULCRUM_SECRET_PROMO_TOKEN", ', ""))
    path = write("021.toml", "[plugins.merchant-promo]\nrollout = 30\n")
    result = run(path)
    assert result.exit_code == 1
    assert result.stdout == (
        f"{path}: plugins.merchant-promo: rollout has no effect: 'merchant-promo' is off in hq.toml and "
        "this entry does not switch it on; add `enabled = true` to give it to this branch's customers "
        "(or `enabled = false` to say it stays off)\n"
    )


def test_a_file_beside_the_checked_ones_that_the_host_does_not_read_is_reported(
    run: Run, write: Write, hq_text: str
) -> None:
    """``branch check branches/*.toml`` does not see 0755.TOML, which the host skips: the check says so."""
    hq = write("hq.toml", hq_text.replace('api_token = "$env:FULCRUM_SECRET_PROMO_TOKEN", ', ""))
    upper = write("0755.TOML", "[plugins.merchant-promo]\nenabled = true\n")
    result = run(hq)
    assert result.exit_code == 1
    assert result.stdout == (
        f"{upper}: not read: the host reads only hq.toml and <code>.toml files, named in lowercase and "
        "ending in .toml exactly; rename it (e.g. 0755.toml) or move it out of the directory\n"
    )
    named = run(hq, upper)  # named on the command line: told once, by the rule for names
    assert named.stdout.count(str(upper)) == 1


def test_a_branch_file_without_hq_beside_it_is_said_to_be_checked_without_hq(run: Run, write: Write) -> None:
    """With no hq.toml beside it, a branch file is checked on its own, and a warning says so and how to check
    it with HQ's rules; once per directory."""
    a = write("0755.toml", "[plugins.wealth-checkup]\nenabled = false\n")
    b = write("021.toml", "")
    result = run(a, b)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"warning: there is no hq.toml in {a.parent}: its branch files are checked without HQ's rules "
        "(mandatory plugins, HQ's pins); check them beside the hq.toml the host reads\n"
    )
    write("hq.toml", "")
    assert run(a, b).stderr == ""


def test_checking_with_no_database_creates_none(
    run: Run, write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --approved and with no database, the check says so, falls back to the installed plugins,
    and leaves no .fulcrum directory or database behind in the directory it ran from."""
    monkeypatch.delenv("FULCRUM_DATABASE_URL", raising=False)
    monkeypatch.delenv("FULCRUM_STATE_DIR", raising=False)
    write("hq.toml", "")
    result = run(write("0755.toml", ""), approved=False)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        f"warning: there is no database at {tmp_path / '.fulcrum' / 'fulcrum.db'} (FULCRUM_DATABASE_URL): "
        "checking against the plugins installed here"
    )
    assert not (tmp_path / ".fulcrum").exists()


def test_a_branch_directory_leaves_out_hidden_files_as_the_shell_does(
    run: Run, write: Write, hq_text: str
) -> None:
    """``branch check branches`` reads what ``branches/*`` expands to, which leaves out hidden files:
    a ``.gitkeep`` or a desktop's ``.DS_Store`` is not named as skipped."""
    hq = write("hq.toml", hq_text.replace('api_token = "$env:FULCRUM_SECRET_PROMO_TOKEN", ', ""))
    write(".gitkeep", "")
    write(".DS_Store", "")
    result = run(hq.parent)
    assert result.exit_code == 0, result.output
    assert ".gitkeep" not in result.stderr, result.stderr
    assert ".DS_Store" not in result.stderr, result.stderr
