"""Secret references: recognised, resolved only for the plugin, redacted everywhere else."""

from __future__ import annotations

from pathlib import Path

import pytest
from fulcrum_core.branches.secrets import (
    REDACTED,
    SecretRef,
    SecretUnavailableError,
    looks_secret,
    parse_reference,
    redact,
    reference_problem,
    resolve,
)


@pytest.mark.parametrize("key", ["api_token", "client_secret", "PASSWORD", "signingKey", "key"])
def test_secret_looking_keys(key: str) -> None:
    """Keys naming a token, secret, password or key are treated as secrets."""
    assert looks_secret(key)


@pytest.mark.parametrize("key", ["city", "campaign", "page_size"])
def test_ordinary_keys(key: str) -> None:
    """Other keys may hold literals."""
    assert not looks_secret(key)
    assert reference_problem(key, "literal") is None


def test_references_parse() -> None:
    """``$env:NAME`` and ``$file:PATH`` are references; anything else is a literal."""
    name = "FULCRUM_SECRET_PROMO_TOKEN"
    assert parse_reference(f"$env:{name}") == SecretRef("env", name)
    assert parse_reference("$file:secrets/promo") == SecretRef("file", "secrets/promo")
    assert parse_reference("$env:1BAD") is None
    assert parse_reference("$5 off") is None
    assert parse_reference(42) is None


def test_resolve_env_and_file(tmp_path: Path) -> None:
    """References resolve from the given environment and from files relative to the branch directory."""
    (tmp_path / "token").write_text("file-secret\n", encoding="utf-8")
    env = {"FULCRUM_SECRET_T": "env-secret"}
    assert resolve("$env:FULCRUM_SECRET_T", environ=env, base_dir=tmp_path) == "env-secret"
    assert resolve("$file:token", environ={}, base_dir=tmp_path) == "file-secret"
    assert resolve(True, environ={}, base_dir=tmp_path) == "true"
    assert resolve(7, environ={}, base_dir=tmp_path) == "7"


def test_unresolvable_references_raise_without_values(tmp_path: Path) -> None:
    """A missing variable or file raises an error naming the reference only."""
    with pytest.raises(SecretUnavailableError, match=r"^\$env:FULCRUM_SECRET_MISSING is not set$"):
        resolve("$env:FULCRUM_SECRET_MISSING", environ={"OTHER": "x"}, base_dir=tmp_path)
    with pytest.raises(SecretUnavailableError, match=r"^\$file:nope cannot be read: FileNotFoundError$"):
        resolve("$file:nope", environ={}, base_dir=tmp_path)


def test_redaction() -> None:
    """People see references as written, secret-looking literals as ***, other values as they are."""
    assert redact("api_token", "$env:FULCRUM_SECRET_PROMO_TOKEN") == "$env:FULCRUM_SECRET_PROMO_TOKEN"
    assert redact("api_token", "sk-live-123") == REDACTED
    assert redact("city", "深圳") == "深圳"


@pytest.mark.parametrize(
    "value",
    [
        "$env:FULCRUM_PAIRWISE_SECRET",  # the host's own configuration
        "$env:FULCRUM_DATABASE_URL",
        "$env:PATH",  # anything else in the host's environment
        "$file:/etc/hostname",  # absolute
        "$file:../../../../etc/passwd",  # out of the branch directory
        "$file:secrets/../../hq.toml",
        "$file:..",
    ],
)
def test_references_reach_only_what_the_operator_put_there_for_plugins(value: str) -> None:
    """``$env:`` only in the FULCRUM_SECRET_ namespace, ``$file:`` only inside the branch directory:
    anything else is not a reference, so the check refuses it and nothing resolves it."""
    assert parse_reference(value) is None
    assert reference_problem("api_token", value) is not None
    assert reference_problem("region", value) is not None  # reference-like, even under a plain key


def test_a_symbolic_link_out_of_the_branch_directory_is_not_followed(tmp_path: Path) -> None:
    """A relative path that is a link to a file elsewhere resolves to an error, never the file."""
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret", encoding="utf-8")
    branch_dir = tmp_path / "branches"
    (branch_dir / "secrets").mkdir(parents=True)
    (branch_dir / "secrets" / "token").symlink_to(outside)
    with pytest.raises(SecretUnavailableError, match="leads out of the branch directory"):
        resolve("$file:secrets/token", environ={}, base_dir=branch_dir)
