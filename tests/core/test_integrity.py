"""Installed plugins checked against the approved wheel: real wheels built from the plugin projects and
installed by uv, then tampered with the way an altered wheel or a hand edit would."""

from __future__ import annotations

import importlib.metadata
import py_compile
import shutil
import subprocess
import zipfile
from pathlib import Path

import msgspec
import pytest
from fulcrum_core.integrity import files_mismatch, manifest_mismatch
from fulcrum_core.registry_host.wheels import build_wheel
from fulcrum_registry.contents import wheel_contents
from fulcrum_sdk.manifest import manifest_from_distribution, manifest_from_wheel

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")
pytestmark = pytest.mark.skipif(UV is None, reason="uv is not on PATH; it builds and installs the wheels")
DIST_INFO = "fulcrum_merchant_promo-0.2.0.dist-info"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The merchant-promo partner plugin's wheel, built from its project with ``uv build``."""
    out = tmp_path_factory.mktemp("wheels")
    filename, data = build_wheel(ROOT / "plugins" / "merchant_promo", out)
    path = out / filename
    path.write_bytes(data)
    return path


def _install(wheel: Path, target: Path) -> importlib.metadata.Distribution:
    """Install with uv, copying files (its default hard links would let a test edit uv's cache)."""
    assert UV is not None
    done = subprocess.run(
        [
            UV,
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--link-mode",
            "copy",
            "--no-cache",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return importlib.metadata.PathDistribution(target / DIST_INFO)


def _record(dist_info: Path, line: str) -> None:
    with (dist_info / "RECORD").open("a", encoding="utf-8") as record:
        record.write(line + "\n")


def test_the_installed_approved_wheel_matches(wheel: Path, tmp_path: Path) -> None:
    """uv's own additions (INSTALLER, REQUESTED, direct_url.json, uv_cache.json, RECORD) are accepted."""
    dist = _install(wheel, tmp_path / "site")
    assert files_mismatch(dist, wheel_contents(wheel) or {}) is None


def test_a_changed_module_names_the_file(wheel: Path, tmp_path: Path) -> None:
    dist = _install(wheel, tmp_path / "site")
    module = tmp_path / "site" / "fulcrum_merchant_promo" / "__init__.py"
    module.write_text(module.read_text() + "\nimport os  # exfiltrate\n")
    problem = files_mismatch(dist, wheel_contents(wheel) or {})
    assert problem == "fulcrum_merchant_promo/__init__.py differs from the approved wheel"


def test_an_altered_wheel_of_the_same_version_is_refused(wheel: Path, tmp_path: Path) -> None:
    """A wheel rebuilt with a module added and the manifest claiming kind department, with a valid
    RECORD of its own, installs cleanly; both its manifest and its files give it away."""
    altered = tmp_path / "altered" / wheel.name
    altered.parent.mkdir()
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(altered, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("fulcrum-plugin.toml"):
                data = data.replace(b'kind = "partner"', b'kind = "department"')
            if not info.filename.endswith("/RECORD"):
                out.writestr(info, data)
        out.writestr("fulcrum_merchant_promo/extra.py", b"SECRET = 1\n")
    _rewrite_record(altered)
    dist = _install(altered, tmp_path / "site")
    assert manifest_mismatch(manifest_from_distribution(dist), manifest_from_wheel(wheel)) == "kind"
    problem = files_mismatch(dist, wheel_contents(wheel) or {})
    assert problem == "fulcrum_merchant_promo/fulcrum-plugin.toml differs from the approved wheel"
    (tmp_path / "site" / "fulcrum_merchant_promo" / "fulcrum-plugin.toml").write_bytes(
        zipfile.ZipFile(wheel).read("fulcrum_merchant_promo/fulcrum-plugin.toml")
    )
    problem = files_mismatch(dist, wheel_contents(wheel) or {})
    assert problem == "fulcrum_merchant_promo/extra.py is installed but not in the approved wheel"


def _rewrite_record(path: Path) -> None:
    """Give ``path`` a correct RECORD for its members (as an attacker rebuilding a wheel would)."""
    import base64
    import hashlib

    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    rows = [
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
        for n, d in members.items()
    ]
    members[f"{DIST_INFO}/RECORD"] = ("\n".join([*rows, f"{DIST_INFO}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_a_missing_file_is_named(wheel: Path, tmp_path: Path) -> None:
    dist = _install(wheel, tmp_path / "site")
    (tmp_path / "site" / DIST_INFO / "entry_points.txt").unlink()
    problem = files_mismatch(dist, wheel_contents(wheel) or {})
    assert problem == f"{DIST_INFO}/entry_points.txt of the approved wheel is not installed"


def test_installer_bytecode_is_accepted_only_when_it_is_the_approved_source(
    wheel: Path, tmp_path: Path
) -> None:
    """pip compiles and records bytecode: accepted when it is the compiled approved source, and named
    when it holds other code (the import system would run it instead of the verified source)."""
    site = tmp_path / "site"
    dist = _install(wheel, site)
    source = site / "fulcrum_merchant_promo" / "__init__.py"
    pyc = Path(py_compile.compile(str(source), doraise=True))
    relative = pyc.relative_to(site).as_posix()
    _record(site / DIST_INFO, f"{relative},,")
    assert files_mismatch(dist, wheel_contents(wheel) or {}) is None
    other = tmp_path / "other.py"
    other.write_text("STOLEN = True\n")
    pyc.write_bytes(Path(py_compile.compile(str(other), doraise=True)).read_bytes())
    assert files_mismatch(dist, wheel_contents(wheel) or {}) == (
        f"{relative} is not the bytecode of the approved fulcrum_merchant_promo/__init__.py"
    )


def test_the_editable_demo_install_is_checked_against_its_source(wheel: Path) -> None:
    """The workspace's editable install: the approved files are found through its path-only .pth."""
    dist = importlib.metadata.distribution("fulcrum-merchant-promo")
    if not (dist.read_text("direct_url.json") or "").count('"editable":true'):
        pytest.skip("fulcrum-merchant-promo is not an editable install here")
    assert files_mismatch(dist, wheel_contents(wheel) or {}) is None
    contents = dict(wheel_contents(wheel) or {})
    contents["fulcrum_merchant_promo/__init__.py"] = "0" * 64
    assert (
        files_mismatch(dist, contents) == "fulcrum_merchant_promo/__init__.py differs from the approved wheel"
    )


def test_a_manifest_difference_names_the_nested_field(wheel: Path) -> None:
    approved = manifest_from_wheel(wheel)
    changed = msgspec.structs.replace(approved, publisher="wealth-dept")
    assert manifest_mismatch(changed, approved) == "publisher"
    assert manifest_mismatch(approved, approved) is None
