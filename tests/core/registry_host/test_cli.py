"""``fulcrum registry``: the whole workflow on the database from the command line, and its refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner, Result
from fulcrum_core.cli import main
from fulcrum_core.data.db import Database
from fulcrum_core.registry_host.host import open_registry
from fulcrum_core.settings import Settings, load_settings
from fulcrum_sdk.manifest import ID_WORDS

from tests.registry.old_rules import OLD_ROWS, file_under_old_rules


@pytest.fixture
def config(tmp_path: Path, migrated_sqlite: Path) -> Path:
    """A settings file on a migrated SQLite copy, with test-bank as a publisher."""
    db_file = tmp_path / "cli.db"
    db_file.write_bytes(migrated_sqlite.read_bytes())
    path = tmp_path / "fulcrum.toml"
    path.write_text(f'database_url = "sqlite:///{db_file}"\nstate_dir = "{tmp_path / "state"}"\n')
    settings = load_settings(config_file=path, environ={})
    db = Database(settings.resolved_database_url())
    open_registry(settings, db).create_publisher(
        {"id": "test-bank", "name": "测试银行", "kind": "department", "contact": "ops@bank.example"},
        actor="t",
    )
    db.dispose()
    return path


def run(config: Path, *args: str) -> Result:
    """Invoke ``fulcrum --config CONFIG ARGS``."""
    return CliRunner().invoke(
        main, ["--config", str(config), "registry", *args], env={"FULCRUM_CONFIG": None}
    )


def test_submit_review_approve_suspend_and_audit(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Submit prints the checks; review shows the diff and checklist; approve, suspend and audit verify."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    submitted = run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    assert submitted.exit_code == 0, submitted.output
    assert "[in_review]" in submitted.output
    assert "passed  entry_point.matches_id" in submitted.output
    review = run(config, "review", "1")
    assert "new scopes: slot:home.notice" in review.output
    assert "[ ] data_minimised" in review.output
    assert run(config, "approve", "1", "--as", "bob", "--confirm").exit_code == 0
    listed = json.loads(run(config, "list", "--state", "approved", "--json").output)
    assert [r["plugin_id"] for r in listed["items"]] == ["notices"]
    suspended = run(config, "suspend", "1", "--as", "carol", "--reason", "drill")
    assert "[suspended]" in suspended.output
    shown = json.loads(run(config, "show", "1", "--json").output)
    assert shown["release"]["state"] == "suspended"
    audit = run(config, "audit", "--subject", "release:1")
    assert "release.suspend" in audit.output
    verified = run(config, "audit", "verify")
    assert verified.exit_code == 0
    assert "intact" in verified.output


def test_submitting_the_identical_wheel_again_shows_the_release_it_filed(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A retry of ``submit`` with the same wheel files no second (checks_failed) release: it says so on
    stderr, shows release 1 and succeeds as the first did; ``--json`` prints that release."""
    wheel = str(wheel_for(kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])))
    assert run(config, "submit", wheel, "--publisher", "test-bank", "--as", "alice").exit_code == 0
    again = run(config, "submit", wheel, "--publisher", "test-bank", "--as", "alice")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("release 1: notices 1.0.0 [in_review]")
    assert "as release 1: nothing new filed" in again.stderr
    shown = json.loads(run(config, "submit", wheel, "--publisher", "test-bank", "--as", "b", "--json").stdout)
    assert (shown["id"], shown["state"]) == (1, "in_review")
    listed = json.loads(run(config, "list", "--json").stdout)
    assert listed["total"] == 1


def test_review_shows_what_the_checklist_asks_about(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """The checklist confirms every scope reason, the display text and the owner: ``review`` prints them."""
    manifest = kit.manifest(
        "notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"], optional=["location:city"]
    )
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    review = run(config, "review", "1")
    assert review.exit_code == 0, review.output
    assert "name: 测试插件 notices / Test plugin notices" in review.output
    assert "description: 用于测试的插件 / A plugin for tests" in review.output
    assert "owner: Test Team <test@example.com>" in review.output
    assert "  required slot:home.notice: needed for the test" in review.output
    assert "  optional location:city: optional for the test" in review.output


def test_review_shows_each_transaction_types_risk_and_amount(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """The reviewer approves what a type sells and which limit applies: ``review`` prints each type's
    declared product risk (per product when it sells several) and its amount field."""
    declared = {
        "notices.pay": {"risk_level": "R2", "amount_field": "amount_fen"},
        "notices.buy": {"product_field": "fund", "product_risks": {"F-2": "R4", "F-1": "R1"},
                        "amount_field": "amount_fen"},
        "notices.claim": {"risk_level": "R1", "moves_money": False},
    }
    hooks = ["register_transaction_types", "execute_transaction"]
    manifest = kit.manifest("notices", hooks=hooks, scopes=[], transaction_types=declared)
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    review = run(config, "review", "1")
    assert review.exit_code == 0, review.output
    assert "transaction types:" in review.output
    assert "  notices.pay: risk R2; amount in amount_fen" in review.output
    assert "  notices.buy: risk per fund: F-1 R1, F-2 R4; amount in amount_fen" in review.output
    assert "  notices.claim: risk R1; moves no money" in review.output


def test_approve_prints_the_diff_it_approved(config: Path, kit: Any, wheel_for: Callable[..., Path]) -> None:
    """The release an approval prints has a manifest: its diff is shown, not "no manifest to compare"."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    approved = run(config, "approve", "1", "--as", "bob", "--confirm")
    assert approved.exit_code == 0, approved.output
    assert "no manifest to compare" not in approved.output
    assert "new scopes: slot:home.notice" in approved.output


def test_a_first_release_says_everything_is_new_not_that_the_diff_is_none(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """With no release approved before, the diff's heading said "diff against the previous approved
    release: none" above the list of what it adds, which reads as "nothing changed"; it says there is no
    such release and that everything below is new."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    review = run(config, "review", "1")
    assert review.exit_code == 0, review.output
    assert "previous approved release: none\n" not in review.output
    assert "diff: no earlier release of this plugin was approved, so all it asks for is new" in review.output
    assert "  new scopes: slot:home.notice" in review.output


def test_audit_says_when_more_events_follow_the_page_it_printed(config: Path) -> None:
    """``registry audit`` prints the oldest 100 events by default and stopped there without a word, so
    an audit of a busy registry read as complete; it now says how to read on, as ``list`` does."""
    for n in (2, 3):
        added = run(config, "add-publisher", f"pub-{n}", "--name", "n", "--kind", "department",
                    "--contact", "ops@bank.example", "--as", "t")
        assert added.exit_code == 0, added.output
    page = run(config, "audit", "--limit", "2")
    assert page.exit_code == 0, page.output
    assert page.output.splitlines()[-1] == "more events follow: add --after 2"
    last = run(config, "audit", "--after", "2", "--limit", "1")
    assert len(last.output.splitlines()) == 1, last.output
    assert "more events follow" not in run(config, "audit", "--limit", "3").output
    listed = json.loads(run(config, "audit", "--limit", "2", "--json").output)
    assert [e["seq"] for e in listed] == [1, 2]


def test_refusals_exit_non_zero_with_the_reason(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Approving without --confirm, one's own release, an illegal move or an unknown id all fail clearly."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    unconfirmed = run(config, "approve", "1", "--as", "bob")
    assert unconfirmed.exit_code == 2
    assert "--confirm" in unconfirmed.output
    own = run(config, "approve", "1", "--as", "alice", "--confirm")
    assert own.exit_code == 1
    assert "cannot review it" in own.output
    illegal = run(config, "resume", "1", "--as", "bob", "--reason", "x")
    assert illegal.exit_code == 1
    assert "'in_review'" in illegal.output
    assert "no release 99" in run(config, "show", "99").output
    bad = Path(str(config)).parent / "fulcrum_bad-1.0.0-py3-none-any.whl"
    bad.write_bytes(b"junk")
    failed = run(config, "submit", str(bad), "--publisher", "test-bank", "--as", "alice")
    assert failed.exit_code == 1
    assert "failed  wheel.well_formed" in failed.output


def test_verify_names_the_first_tampered_row(config: Path) -> None:
    """A changed audit row makes ``audit verify`` exit 1 and name that row."""
    settings = load_settings(config_file=config, environ={})
    db = Database(settings.resolved_database_url())
    with db.begin() as conn:
        conn.exec_driver_sql("UPDATE registry_audit SET actor = 'mallory' WHERE seq = 1")
    db.dispose()
    result = run(config, "audit", "verify", "--json")
    assert result.exit_code == 1
    assert msgspec.json.decode(result.output)["broken"]["seq"] == 1


@pytest.mark.parametrize(
    "option", [["--json"], ["--subject", "release:1"], ["--after", "3"], ["--limit", "5"]]
)
def test_listing_options_before_verify_are_refused_not_ignored(config: Path, option: list[str]) -> None:
    """``audit --json verify`` used to print text: an option ``verify`` would ignore is a usage error."""
    result = run(config, "audit", *option, "verify")
    assert result.exit_code == 2, result.output
    assert f"{option[0]}: an option of `" in result.output
    assert "registry audit` itself, which" in result.output
    assert "intact" not in result.output


def test_branch_check_names_a_plugin_in_review_as_not_approved_not_unknown(
    config: Path, kit: Any, wheel_for: Callable[..., Path], tmp_path: Path
) -> None:
    """A branch file enabling a plugin whose only release is in review is told it is not approved yet."""
    for plugin_id in ("notices", "drafts"):
        manifest = kit.manifest(plugin_id, hooks=["home_slot_offers"], scopes=["slot:home.notice"])
        wheel = str(wheel_for(manifest))
        submitted = run(config, "submit", wheel, "--publisher", "test-bank", "--as", "alice")
        assert submitted.exit_code == 0, submitted.output
    assert run(config, "approve", "1", "--as", "bob", "--confirm").exit_code == 0
    hq = tmp_path / "branches" / "hq.toml"
    hq.parent.mkdir()
    hq.write_text("[plugins.notices]\nenabled = true\n[plugins.drafts]\nenabled = true\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["--config", str(config), "branch", "check", str(hq)], env={"FULCRUM_CONFIG": None}
    )
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [f"{hq}: plugins.drafts: plugin 'drafts' has no approved release"]


def test_support_takes_a_plugin_only_the_registry_knows(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """``support partner-request-id`` refuses unknown plugins; one filed in the registry, not installed
    here, is known."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    env = {"FULCRUM_CONFIG": None, "FULCRUM_PAIRWISE_SECRET": "s3cret"}
    args = ["--config", str(config), "support", "partner-request-id"]
    known = CliRunner().invoke(main, [*args, "notices", "abc"], env=env)
    assert known.exit_code == 0, known.output
    unknown = CliRunner().invoke(main, [*args, "notice", "abc"], env=env)
    assert unknown.exit_code == 2, unknown.output
    assert "unknown plugin 'notice'" in unknown.output
    assert "notices, pension" in unknown.output


def test_list_says_when_there_are_more_and_pages_on_with_after(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A listing cut at ``--limit`` says so and how to go on; ``--after ID`` lists the next page."""
    for plugin_id in ("first", "second", "third"):
        manifest = kit.manifest(plugin_id, hooks=["home_slot_offers"], scopes=["slot:home.notice"])
        wheel = str(wheel_for(manifest))
        assert run(config, "submit", wheel, "--publisher", "test-bank", "--as", "alice").exit_code == 0
    first = run(config, "list", "--limit", "2")
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["release 1", "release 2"]
    assert lines[2:] == ["3 releases in all; the next ones: add --after 2"]
    rest = run(config, "list", "--limit", "2", "--after", "2")
    assert [line.split(":")[0] for line in rest.output.splitlines()] == ["release 3"]
    assert json.loads(run(config, "list", "--after", "2", "--json").output)["next_cursor"] is None


@pytest.mark.parametrize("args", [["list"], ["audit", "verify"], ["show", "1"]])
def test_an_unmigrated_database_is_one_line_saying_to_upgrade(tmp_path: Path, args: list[str]) -> None:
    """Before ``db upgrade`` the commands printed the failing SQL statement and a link, over four lines."""
    config = tmp_path / "fulcrum.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "empty.db"}"\n', encoding="utf-8")
    (tmp_path / "empty.db").touch()
    result = run(config, *args)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        "Error: the database refused: no such table: "
        + ("registry_audit" if args[0] == "audit" else "registry_releases")
        + ". Is FULCRUM_DATABASE_URL right, the server up, and the schema migrated (`fulcrum db upgrade`)?"
    ]


@pytest.mark.parametrize("args", [["registry", "list"], ["registry", "review", "1"]])
def test_a_read_only_command_with_no_database_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """Run where there is no database (e.g. inside branches/), a read-only command says so in one line and
    how to point at one or create one, and leaves no .fulcrum directory or database file behind."""
    monkeypatch.chdir(tmp_path)
    env = {"FULCRUM_CONFIG": None, "FULCRUM_DATABASE_URL": None, "FULCRUM_STATE_DIR": None}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        f"Error: there is no database at {tmp_path / '.fulcrum' / 'fulcrum.db'}: set FULCRUM_DATABASE_URL "
        "(or database_url in --config) to the server's, or create one here with `fulcrum db upgrade` "
        "(or `fulcrum demo`)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_token_issue_names_the_publisher(tmp_path: Path) -> None:
    """``token issue --staff --publisher`` puts the publisher claim in the token; customers get none."""
    from fulcrum_core.auth.tokens import TokenService

    env = {"FULCRUM_STATE_DIR": str(tmp_path / "state"), "FULCRUM_CONFIG": None}
    TokenService.from_settings(Settings(state_dir=str(tmp_path / "state")))  # the server's keys
    minted = CliRunner().invoke(
        main,
        ["token", "issue", "--staff", "paul", "--scope", "registry:publish", "--publisher", "test-bank"],
        env=env,
    )
    assert minted.exit_code == 0, minted.output
    service = TokenService.from_settings(Settings(state_dir=str(tmp_path / "state")))
    assert service.verify_token(minted.output.strip()).claims.publisher == "test-bank"
    refused = CliRunner().invoke(
        main, ["token", "issue", "--customer", "c-1", "--publisher", "test-bank"], env=env
    )
    assert refused.exit_code == 2
    assert "--publisher goes with --staff" in refused.output


def test_publishers_are_listed_a_page_at_a_time(config: Path) -> None:
    """``publishers`` takes ``--limit`` and ``--after`` as ``list`` does and says where the next page
    starts; ``--json`` prints the page (items, next_cursor, total); a bad ``--after`` names it."""
    for pid in ("branch-0755", "fund-partner"):
        kind = "branch" if pid.startswith("branch-") else "partner"
        made = run(config, "add-publisher", pid, "--name", pid, "--kind", kind, "--contact", "a@b.example",
                   "--as", "platform")
        assert made.exit_code == 0, made.output
    first = run(config, "publishers", "--limit", "2").output.splitlines()
    assert [line.split()[0] for line in first[:2]] == ["branch-0755", "fund-partner"]
    assert first[2:] == ["3 publishers in all; the next ones: add --after fund-partner"]
    rest = run(config, "publishers", "--limit", "2", "--after", "fund-partner").output.splitlines()
    assert [line.split()[0] for line in rest] == ["test-bank"]
    page = json.loads(run(config, "publishers", "--limit", "1", "--json").output)
    assert ([p["id"] for p in page["items"]], page["next_cursor"], page["total"]) == (
        ["branch-0755"], "branch-0755", 3
    )
    bad = run(config, "publishers", "--after", "Not A Slug")
    assert bad.exit_code == 1
    assert bad.output.startswith("Error: --after: must be 2 to 50 lowercase letters"), bad.output


def test_publishers_are_added_and_listed(config: Path) -> None:
    """``add-publisher`` creates one (audited under --as); a taken id or a bad contact is refused."""
    added = run(
        config,
        "add-publisher",
        "branch-0755",
        "--name",
        "深圳分行",
        "--kind",
        "branch",
        "--contact",
        "it@sz.bank.example",
        "--verified",
        "--as",
        "platform",
    )
    assert added.exit_code == 0, added.output
    listed = run(config, "publishers")
    assert "branch-0755" in listed.output
    assert "verified" in listed.output
    again = run(
        config,
        "add-publisher",
        "branch-0755",
        "--name",
        "x",
        "--kind",
        "branch",
        "--contact",
        "a@b.example",
        "--as",
        "platform",
    )
    assert again.exit_code == 1
    assert "exists already" in again.output
    bad = run(
        config,
        "add-publisher",
        "x-bank",
        "--name",
        "x",
        "--kind",
        "branch",
        "--contact",
        "nope",
        "--as",
        "platform",
    )
    assert bad.exit_code == 1
    assert bad.output == (
        "Error: --contact: must be an e-mail address that reaches the publisher, such as ops@bank.example "
        "(no spaces)\n"
    )


@pytest.mark.parametrize("publisher_id", ["Bad_Id", "x", "a" * 51, "city--dept"])
def test_a_bad_publisher_id_names_the_id_argument(config: Path, publisher_id: str) -> None:
    """A bad id was refused as ``id:``, a name the command shows nowhere: it names the ``ID`` argument
    as the usage line and click's own errors do; nothing is created."""
    before = run(config, "publishers").output
    bad = run(
        config, "add-publisher", publisher_id, "--name", "x", "--kind", "branch", "--contact", "a@b.example",
        "--as", "platform",
    )
    assert bad.exit_code == 1
    assert bad.output == f"Error: ID: must be {ID_WORDS}\n"
    assert run(config, "publishers").output == before


def test_an_unknown_state_names_the_valid_ones(config: Path) -> None:
    """``registry list --state bogus`` is a usage error listing the registry's release states."""
    result = run(config, "list", "--state", "bogus")
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "Error: Invalid value for '--state': 'bogus' is not one of 'submitted', 'checks_failed', "
        "'in_review', 'approved', 'rejected', 'suspended', 'retired'."
    )
    assert "--state [submitted|checks_failed|in_review|approved|rejected|suspended|retired]" in (
        run(config, "list", "--help").output
    )


def test_approvals_read_as_a_count(config: Path, kit: Any, wheel_for: Callable[..., Path]) -> None:
    """The review says "approvals: 0 of 1" (it said "none of 1 needed"), then the count and who approved."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    submitted = run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    assert submitted.exit_code == 0, submitted.output
    assert "\napprovals: 0 of 1\n" in run(config, "review", "1").output
    assert run(config, "approve", "1", "--as", "bob", "--confirm").exit_code == 0
    shown = run(config, "show", "1").output
    assert "\napprovals: 1 of 1 (bob)\n" in shown
    assert "\n  bob approve (no reason given)\n" in shown  # it printed "bob approve: -"


def test_a_failed_check_says_what_is_wrong_and_how_to_fix_it(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Submitting a version already submitted (a changed build) prints the check's failure, its details
    and the fix."""
    wheel = wheel_for(kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"]))
    assert run(config, "submit", str(wheel), "--publisher", "test-bank", "--as", "alice").exit_code == 0
    changed = wheel_for(
        kit.manifest(
            "notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"], optional=["location:city"]
        )
    )
    again = run(config, "submit", str(changed), "--publisher", "test-bank", "--as", "alice")
    assert again.exit_code == 1
    assert "[checks_failed]" in again.output
    lines = again.output.splitlines()
    at = lines.index("  failed  release.version_newer")
    assert lines[at + 1].strip() == "the version is not newer than every earlier release of this plugin"
    assert "is not older" in lines[at + 2]
    assert lines[at + 3].strip().startswith("fix: raise the version in pyproject.toml")


def test_review_warns_of_the_templates_placeholder_description(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A release still describing itself with the template's placeholder passes its checks, and the
    reviewer's ``review`` (and ``show``) print a warning line for it; written text gets none."""
    from fulcrum_registry.placeholders import TEMPLATE_PLACEHOLDERS
    from fulcrum_sdk.models import LocalizedText

    placeholder = LocalizedText(
        zh_CN=TEMPLATE_PLACEHOLDERS["description.zh-CN"], en=TEMPLATE_PLACEHOLDERS["description.en"]
    )
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    baked = msgspec.structs.replace(manifest, description=placeholder)
    submitted = run(config, "submit", str(wheel_for(baked)), "--publisher", "test-bank", "--as", "alice")
    assert "[in_review]" in submitted.output, submitted.output
    for command in ("review", "show"):
        shown = run(config, command, "1")
        assert shown.exit_code == 0, shown.output
        warnings = [line for line in shown.output.splitlines() if line.startswith("warning: ")]
        assert [w.split(" ")[1] for w in warnings] == ["description.zh-CN", "description.en"], shown.output
    as_json = json.loads(run(config, "show", "1", "--json").output)
    assert [w.split(" ")[0] for w in as_json["warnings"]] == ["description.zh-CN", "description.en"]
    written = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(
        config,
        "submit",
        str(wheel_for(msgspec.structs.replace(written, version="1.0.1"), "1.0.1")),
        "--publisher",
        "test-bank",
        "--as",
        "alice",
    )
    clean = run(config, "review", "2")
    assert "[in_review]" in clean.output, clean.output
    assert "warning: " not in clean.output


def _suspended_high_sensitivity_release(config: Path, kit: Any, wheel_for: Callable[..., Path]) -> None:
    """Release 1, asking for a high-sensitivity scope: submitted by alice, approved by bob and carol,
    suspended by ops."""
    high = ["slot:home.notice", "pension:read"]
    manifest = kit.manifest("pensions", hooks=["home_slot_offers"], scopes=high)
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    for reviewer in ("bob", "carol"):
        run(config, "approve", "1", "--as", reviewer, "--confirm")
    run(config, "suspend", "1", "--as", "ops", "--reason", "incident 7")


def test_undoing_a_kill_switch_takes_four_eyes(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """resume and reinstate-publisher refuse the submitter and who suspended, and say when one more must."""
    _suspended_high_sensitivity_release(config, kit, wheel_for)
    for who, words in (("alice", "'alice' submitted release 1"), ("ops", "'ops' pulled the kill switch")):
        refused = run(config, "resume", "1", "--as", who, "--reason", "fixed")
        assert refused.exit_code == 1
        assert words in refused.output
    first = run(config, "resume", "1", "--as", "dave", "--reason", "patched")
    assert first.exit_code == 0, first.output
    assert "a second reviewer must resume it too" in first.output
    assert "[suspended]" in first.output
    second = run(config, "resume", "1", "--as", "erin", "--reason", "checked")
    assert "[approved]" in second.output
    assert "second reviewer" not in second.output

    run(config, "suspend-publisher", "test-bank", "--as", "ops", "--reason", "incident 8")
    refused = run(config, "reinstate-publisher", "test-bank", "--as", "alice", "--reason", "ours")
    assert refused.exit_code == 1
    assert "'alice' submitted release 1 of 'test-bank'" in refused.output
    pending = run(config, "reinstate-publisher", "test-bank", "--as", "dave", "--reason", "closed")
    assert "stays suspended" in pending.output
    back = run(config, "reinstate-publisher", "test-bank", "--as", "erin", "--reason", "ok")
    assert "publisher test-bank reinstated" in back.output


def test_a_half_agreed_undo_is_shown_to_the_next_reviewer(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """show, list and publishers say who agreed to resume or reinstate, of how many, and who may not."""
    _suspended_high_sensitivity_release(config, kit, wheel_for)
    assert "agreed by" not in run(config, "show", "1").output
    run(config, "resume", "1", "--as", "dave@bank.example", "--reason", "patched")
    words = (
        "resume agreed by dave@bank.example (1 of 2); needs one more reviewer, "
        "not the submitter (alice), who suspended it (ops) or who agreed already"
    )
    shown = run(config, "show", "1").output.splitlines()
    detail = shown[shown.index(words) + 1]  # when and why, under it
    assert detail.startswith("  dave@bank.example agreed 2026-")
    assert detail.endswith(": patched")
    queue = run(config, "list", "--state", "suspended").output.splitlines()
    head = "release 1: pensions 1.0.0 [suspended] publisher test-bank, submitted by alice"
    assert queue == [head, f"  {words}"]
    pending = json.loads(run(config, "show", "1", "--json").output)["release"]["pending_resume"]
    assert (pending["agreed"][0]["by"], pending["needed"], pending["suspended_by"]) == (
        "dave@bank.example",
        2,
        "ops",
    )
    run(config, "resume", "1", "--as", "erin", "--reason", "checked")
    assert "agreed by" not in run(config, "show", "1").output
    assert json.loads(run(config, "show", "1", "--json").output)["release"]["pending_resume"] is None

    run(config, "suspend-publisher", "test-bank", "--as", "ops", "--reason", "incident 8")
    assert "agreed by" not in run(config, "publishers").output
    first = run(config, "reinstate-publisher", "test-bank", "--as", "dave", "--reason", "closed").output
    reinstatement = (
        "reinstatement agreed by dave (1 of 2); needs one more reviewer, "
        "not one of its submitters, who suspended it (ops) or who agreed already"
    )
    assert reinstatement in first
    listed = run(config, "publishers").output.splitlines()
    assert listed[1:] == [f"  {reinstatement}"]
    assert listed[0].endswith("SUSPENDED")
    run(config, "reinstate-publisher", "test-bank", "--as", "erin", "--reason", "ok")
    assert len(run(config, "publishers").output.splitlines()) == 1


def test_waiting_lists_what_a_second_reviewer_completes_in_words(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """``list --waiting`` shows a second approval and a second agreement to resume, a page at a time;
    ``--as`` leaves out what that person approved, suspended or agreed to; ``publishers --waiting`` alike."""
    _suspended_high_sensitivity_release(config, kit, wheel_for)
    high = kit.manifest("pensions", hooks=["home_slot_offers"], scopes=["slot:home.notice", "pension:read"])
    for version in ("1.0.1", "1.0.2"):
        run(config, "submit", str(wheel_for(high, version)), "--publisher", "test-bank", "--as", "alice")
    assert run(config, "list", "--waiting").output == "no releases wait for another reviewer\n"
    run(config, "approve", "2", "--as", "bob", "--confirm")
    run(config, "resume", "1", "--as", "dave", "--reason", "patched")

    first = run(config, "list", "--waiting", "--limit", "1").output.splitlines()
    assert first == [
        "release 1: pensions 1.0.0 [suspended] publisher test-bank, submitted by alice",
        "  resume agreed by dave (1 of 2); needs one more reviewer, not the submitter (alice), "
        "who suspended it (ops) or who agreed already",
        "2 releases in all; the next ones: add --after 1",
    ]
    rest = run(config, "list", "--waiting", "--limit", "1", "--after", "1").output.splitlines()
    assert rest == [
        "release 2: pensions 1.0.1 [in_review] publisher test-bank, submitted by alice",
        "  approved by bob (1 of 2); needs one more reviewer, not the submitter (alice) or who approved "
        "already",
    ]
    assert "approved by bob (1 of 2)" in run(config, "show", "2").output

    def ids(*args: str) -> list[int]:
        result = run(config, "list", "--waiting", "--json", *args)
        assert result.exit_code == 0, result.output
        return [r["id"] for r in json.loads(result.output)["items"]]

    assert (ids("--as", "Bob"), ids("--as", "dave"), ids("--as", "OPS"), ids("--as", "erin")) == (
        [1], [2], [2], [1, 2]
    )
    assert run(config, "list", "--waiting", "--as", "alice").output == "no releases wait for alice\n"
    run(config, "approve", "2", "--as", "carol", "--confirm")
    assert ids() == [1]

    run(config, "resume", "1", "--as", "erin", "--reason", "checked")
    run(config, "suspend-publisher", "test-bank", "--as", "ops", "--reason", "incident 8")
    run(config, "reinstate-publisher", "test-bank", "--as", "dave", "--reason", "closed")
    listed = run(config, "publishers", "--waiting").output.splitlines()
    assert listed[0].startswith("test-bank")
    assert listed[0].endswith("SUSPENDED")
    assert listed[1].startswith("  reinstatement agreed by dave (1 of 2)")
    assert run(config, "publishers", "--waiting", "--as", "dave").output == "no publishers wait for dave\n"
    assert run(config, "publishers", "--waiting", "--as", "erin").output.splitlines() == listed


@pytest.mark.parametrize("command", ["list", "publishers"])
def test_bad_waiting_options_are_usage_errors_naming_the_option(config: Path, command: str) -> None:
    """``--as`` without ``--waiting`` is a usage error; a blank ``--as`` names ``--as``."""
    alone = run(config, command, "--as", "erin")
    assert alone.exit_code == 2
    assert alone.output.splitlines()[-1] == (
        "Error: --as names the reviewer --waiting lists for: pass --waiting too"
    )
    blank = run(config, command, "--waiting", "--as", "  ")
    assert blank.exit_code == 1
    assert blank.output == "Error: --as: must name who acts (1–200 characters, no NUL)\n"


def test_suspend_publisher_and_reinstate(config: Path, kit: Any, wheel_for: Callable[..., Path]) -> None:
    """The platform team's publisher kill switch: listed as SUSPENDED, submit refused, audited, undone."""
    done = run(config, "suspend-publisher", "test-bank", "--as", "ops", "--reason", "incident 7")
    assert done.exit_code == 0, done.output
    assert "publisher test-bank suspended" in done.output
    assert "SUSPENDED" in run(config, "publishers").output
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    refused = run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    assert refused.exit_code == 1
    assert "'test-bank' is suspended" in refused.output
    again = run(config, "suspend-publisher", "test-bank", "--as", "ops", "--reason", "x")
    assert again.exit_code == 1
    assert "already suspended" in again.output
    back = run(config, "reinstate-publisher", "test-bank", "--as", "dave", "--reason", "fixed")
    assert back.exit_code == 0, back.output
    assert "SUSPENDED" not in run(config, "publishers").output
    audit = run(config, "audit", "--subject", "publisher:test-bank").output
    assert "publisher.suspended" in audit
    assert "publisher.reinstated" in audit


def test_withhold_drops_one_optional_scope_without_listing_the_rest(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """``--withhold SCOPE`` grants everything else requested; a required or unrequested scope is refused."""
    manifest = kit.manifest(
        "notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"], optional=["location:city"]
    )
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    both = run(config, "approve", "1", "--as", "bob", "--confirm", "--grant", "x", "--withhold", "y")
    assert both.exit_code == 2
    assert "--grant or --withhold" in both.output
    required = run(config, "approve", "1", "--as", "bob", "--confirm", "--withhold", "slot:home.notice")
    assert required.exit_code == 1
    assert "required scopes cannot be withheld: slot:home.notice" in required.output
    unknown = run(config, "approve", "1", "--as", "bob", "--confirm", "--withhold", "holdings:read")
    assert unknown.exit_code == 1
    assert "not requested by release 1: holdings:read" in unknown.output
    approved = run(config, "approve", "1", "--as", "bob", "--confirm", "--withhold", "location:city")
    assert approved.exit_code == 0, approved.output
    assert "\ngranted: slot:home.notice\n" in approved.output


def test_review_names_the_scopes_that_need_a_second_approver(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """The review line "approvals: 0 of 2" names the high-sensitivity scopes behind the 2."""
    manifest = kit.manifest(
        "notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"], optional=["holdings:read"]
    )
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    review = run(config, "review", "1").output
    assert "\napprovals: 0 of 2 (high-sensitivity: holdings:read)\n" in review


def test_the_audit_listing_shows_why(config: Path, kit: Any, wheel_for: Callable[..., Path]) -> None:
    """Suspensions and rejections carry a reason; the text listing prints it, not only ``--json``."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    run(config, "reject", "1", "--as", "bob", "--reason", "texts mislead", "--reason", "no owner")
    run(config, "suspend-publisher", "test-bank", "--as", "ops", "--reason", "incident 9")
    lines = run(config, "audit").output.splitlines()
    reject = next(line for line in lines if "release.reject" in line)
    assert reject.endswith("release:1  texts mislead; no owner")
    suspended = next(line for line in lines if "publisher.suspended" in line)
    assert suspended.endswith("publisher:test-bank  incident 9")


@pytest.mark.parametrize("args", [["list"], ["publishers"], ["audit"]])
def test_an_unmigrated_postgres_database_is_one_line_saying_to_upgrade(
    tmp_path: Path, postgres_url: str, args: list[str]
) -> None:
    """On PostgreSQL a missing table is a ProgrammingError: it printed the SQL position over three lines
    and no hint, where SQLite's OperationalError got the one line saying to run ``fulcrum db upgrade``."""
    config = tmp_path / "fulcrum.toml"
    config.write_text(f'database_url = "{postgres_url}"\n', encoding="utf-8")
    result = run(config, *args)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: the database refused: relation ")
    assert lines[0].endswith("schema migrated (`fulcrum db upgrade`)?")


def test_review_warns_when_the_publisher_is_suspended(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A release queued before its publisher was suspended says so, before the approval is refused."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    assert "SUSPENDED" not in run(config, "review", "1").output
    run(config, "suspend-publisher", "test-bank", "--as", "ops", "--reason", "incident")
    review = run(config, "review", "1").output
    assert "publisher test-bank is SUSPENDED: an approval is refused until it is reinstated" in review


def test_a_half_approved_release_of_a_suspended_publisher_says_what_holds_it(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """``list`` and ``show`` said "approved by bob (1 of 2); needs one more reviewer" though the second
    approval is refused while the publisher is suspended (and ``--waiting`` leaves the release out):
    they say the suspension holds it, who may reinstate, and a reinstatement half agreed."""
    high = ["slot:home.notice", "pension:read"]
    manifest = kit.manifest("pensions", hooks=["home_slot_offers"], scopes=high)
    for version in ("1.0.0", "1.0.1", "1.0.2"):
        run(config, "submit", str(wheel_for(manifest, version)), "--publisher", "test-bank", "--as", "alice")
    run(config, "approve", "1", "--as", "bob", "--confirm")
    for reviewer in ("bob", "carol"):  # release 3 runs: reinstating takes two people
        run(config, "approve", "3", "--as", reviewer, "--confirm")
    head = "release {}: pensions 1.0.{} [{}] publisher test-bank, submitted by alice"
    heads = [head.format(1, 0, "in_review"), head.format(2, 1, "in_review"), head.format(3, 2, "approved")]
    waits = (
        "approved by bob (1 of 2); needs one more reviewer, not the submitter (alice) or who approved already"
    )
    assert run(config, "list").output.splitlines() == [heads[0], f"  {waits}", *heads[1:]]
    run(config, "suspend-publisher", "test-bank", "--as", "ops", "--reason", "incident")
    held = (
        "approved by bob (1 of 2); on hold: publisher test-bank is suspended, so approving is refused until "
        "it is reinstated (reinstate-publisher test-bank, not by one of its submitters or who suspended it)"
    )
    hold = held.split("; ", 1)[1]  # release 2, approved by nobody yet: the hold alone
    assert run(config, "list").output.splitlines() == [heads[0], f"  {held}", heads[1], f"  {hold}", heads[2]]
    assert run(config, "list", "--waiting").output == "no releases wait for another reviewer\n"
    shown = run(config, "show", "1").output.splitlines()
    assert held in shown
    assert waits not in shown
    assert held in run(config, "review", "1").output.splitlines()
    assert json.loads(run(config, "show", "1", "--json").output)["release"]["publisher_suspended"] is True

    run(config, "reinstate-publisher", "test-bank", "--as", "dave", "--reason", "closed")  # one of two
    half = (
        "reinstatement agreed by dave (1 of 2); needs one more reviewer, not one of its submitters, who "
        "suspended it (ops) or who agreed already"
    )
    assert run(config, "list").output.splitlines()[:3] == [heads[0], f"  {held}", f"  {half}"]
    assert half in run(config, "show", "1").output.splitlines()
    run(config, "reinstate-publisher", "test-bank", "--as", "erin", "--reason", "checked")
    assert run(config, "list").output.splitlines() == [heads[0], f"  {waits}", *heads[1:]]
    assert run(config, "list", "--waiting").output.splitlines() == [heads[0], f"  {waits}"]


def test_reject_prints_the_reasons_it_recorded(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """``reject`` printed only the release heading; the reviewer now sees the reasons as recorded."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    rejected = run(config, "reject", "1", "--as", "bob", "--reason", "texts mislead", "--reason", "no owner")
    assert rejected.exit_code == 0, rejected.output
    lines = rejected.output.splitlines()
    assert "[rejected]" in lines[0]
    assert lines[1:] == ["rejected by bob:", "  - texts mislead", "  - no owner"]


def test_a_blank_rejection_reason_names_the_option(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """``reject --reason " "`` said "reasons.0: each reason must be 1–2000 characters"."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    result = run(config, "reject", "1", "--as", "bob", "--reason", "  ")
    assert result.exit_code == 1
    assert result.output == "Error: --reason: a rejection reason must not be blank\n"


def test_a_reason_holding_a_line_break_names_the_option(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """``reject --reason`` with a pasted line break (or a bidi control) is refused naming the option and
    the character: the reason is listed on one line here and shown to the publisher."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    result = run(config, "reject", "1", "--as", "bob", "--reason", "texts\nmislead")
    assert result.exit_code == 1
    assert result.output == (
        "Error: --reason: U+000A LINE FEED at index 5 is not allowed in display text; a reason is one "
        "line: give several points as several reasons\n"
    )


def test_the_audit_listing_stays_aligned_with_a_long_actor(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """An actor longer than 16 characters pushed its row's action and subject columns to the right."""
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(
        config,
        "submit",
        str(wheel_for(manifest)),
        "--publisher",
        "test-bank",
        "--as",
        "a-very-long-reviewer@bank.example",
    )
    run(config, "suspend-publisher", "test-bank", "--as", "ops", "--reason", "drill")
    lines = run(config, "audit").output.splitlines()
    assert len(lines) >= 3
    columns = {
        line.index(action) for line in lines for action in ("publisher.", "release.") if action in line
    }
    assert len(columns) == 1, lines


def test_a_release_filed_without_its_plugin_lists_the_plugin_its_manifest_names(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Submitted by a publisher that may not claim its plugin id, a release is filed without one; the
    listing names the plugin its manifest is for (it said ``?``)."""
    added = run(
        config, "add-publisher", "other-dept", "--name", "其他部门", "--kind", "department",
        "--contact", "ops@other.example", "--as", "platform",
    )
    assert added.exit_code == 0, added.output
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "other-dept", "--as", "alice")
    listed = run(config, "list")
    assert "release 1: notices (unclaimed) " in listed.output, listed.output
    assert "?" not in listed.output.split("release 1:", 1)[1].split("\n", 1)[0]


def test_list_plugin_finds_its_unclaimed_releases_too(
    config: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """``list --plugin notices`` left out a release filed without its plugin (its publisher may not
    claim the id); it lists it, labelled as the whole listing labels it."""
    run(
        config, "add-publisher", "other-dept", "--name", "其他部门", "--kind", "department",
        "--contact", "ops@other.example", "--as", "platform",
    )
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "other-dept", "--as", "alice")
    listed = run(config, "list", "--plugin", "notices")
    assert listed.exit_code == 0, listed.output
    heads = [line.split(" [", 1)[0] for line in listed.output.splitlines()]
    assert heads == ["release 1: notices 1.0.0", "release 2: notices (unclaimed) 1.0.0"], listed.output
    assert run(config, "list", "--plugin", "other").output == "no releases\n"


@pytest.mark.parametrize("old", list(OLD_ROWS))
def test_a_release_filed_under_older_rules_is_listed_shown_and_suspended(
    config: Path, kit: Any, wheel_for: Callable[..., Path], old: str
) -> None:
    """A release whose stored manifest today's rules refuse made ``list``, ``show`` and ``review`` fail
    with a traceback (an id with ``--``); each prints it, saying the key and problem and that it never
    runs, approving it is refused with the reason, and the kill switch and retirement still work."""
    changes, key, words = OLD_ROWS[old]
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    run(config, "submit", str(wheel_for(manifest)), "--publisher", "test-bank", "--as", "alice")
    assert run(config, "approve", "1", "--as", "bob", "--confirm").exit_code == 0
    newer = wheel_for(manifest, version="1.1.0")
    run(config, "submit", str(newer), "--publisher", "test-bank", "--as", "alice")
    settings = load_settings(config_file=config, environ={})
    db = Database(settings.resolved_database_url())
    for release_id in (1, 2):
        file_under_old_rules(db.engine, release_id, **changes)
    db.dispose()
    line = f"FAILS TODAY'S RULES: {key}: "
    for args in (["list"], ["list", "--state", "in_review"], ["show", "1"], ["review", "2"]):
        shown = run(config, *args)
        assert shown.exit_code == 0, (args, shown.output)
        assert line in shown.output, (args, shown.output)
        assert words in shown.output, (args, shown.output)
    listed = json.loads(run(config, "list", "--json").output)
    assert [r["manifest_problem"]["key"] for r in listed["items"]] == [key, key]
    approving = run(config, "approve", "2", "--as", "bob", "--confirm")
    assert approving.exit_code != 0
    assert f"fails today's rules ({key}: " in approving.output, approving.output
    assert run(config, "reject", "2", "--as", "bob", "--reason", "old rules").exit_code == 0
    assert "[suspended]" in run(config, "suspend", "1", "--as", "carol", "--reason", "old rules").output
    assert "[retired]" in run(config, "retire", "1", "--as", "carol", "--reason", "old rules").output
