"""Seed the demo registry: publishers, and the three plugins as approved releases.

Each plugin goes the way a real submission goes: its wheel is built from its source tree, submitted
(``RegistryService.submit`` runs every check), then approved by reviewers other than the submitter —
two distinct demo reviewers, since every demo plugin asks for a high-sensitivity scope. Running it
again changes nothing: publishers that exist are kept and an approved version is not submitted again.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from fulcrum_registry import REVIEW_CHECKLIST, NewPublisher, NotFound, RegistryService, ReleaseRead
from fulcrum_sdk.errors import ManifestError
from fulcrum_sdk.manifest import manifest_from_distribution

from fulcrum_core.registry_host.wheels import WheelBuildError, build_wheel, source_tree

__all__ = ["DEMO_PLUGINS", "DEMO_PUBLISHERS", "DEMO_REVIEWERS", "DEMO_SUBMITTER", "seed_registry"]

DEMO_PUBLISHERS = (
    NewPublisher(
        id="wealth-dept",
        name="财富管理部",
        name_en="Wealth Management Department",
        kind="department",
        contact="wealth@bank.example",
        verified=True,
    ),
    NewPublisher(
        id="pension-dept",
        name="养老金融部",
        name_en="Pension Finance Department",
        kind="department",
        contact="pension@bank.example",
        verified=True,
    ),
    NewPublisher(
        id="citylife",
        name="城市生活",
        name_en="CityLife (partner)",
        kind="partner",
        contact="partners@citylife.example",
        verified=True,
    ),
)
DEMO_PLUGINS = ("fulcrum-wealth-checkup", "fulcrum-pension", "fulcrum-merchant-promo")
"""The distributions the demo publishes."""
DEMO_SUBMITTER = "demo-publisher"
DEMO_REVIEWERS = ("demo-reviewer-1", "demo-reviewer-2")
_SYSTEM = "fulcrum-demo"


def _publishers(service: RegistryService) -> int:
    created = 0
    for publisher in DEMO_PUBLISHERS:
        try:
            service.get_publisher(publisher.id)
        except NotFound:
            service.create_publisher(publisher, actor=_SYSTEM)
            created += 1
    return created


def _approve(service: RegistryService, release: ReleaseRead) -> ReleaseRead:
    for reviewer in DEMO_REVIEWERS:
        if release.state != "in_review":
            break
        if reviewer in release.approvals:
            continue
        release = service.approve(
            release.id,
            reviewer=reviewer,
            checklist=dict.fromkeys(REVIEW_CHECKLIST, True),
            reasons=["演示数据：已审核 / demo data: reviewed"],
        )
    return release


def _publish(service: RegistryService, distribution: str, cache_dir: Path) -> str:
    try:
        dist = importlib.metadata.distribution(distribution)
        manifest = manifest_from_distribution(dist)
    except (importlib.metadata.PackageNotFoundError, ManifestError) as exc:
        return f"{distribution}: not installed or no manifest ({exc})"
    version = dist.version
    try:
        suspended = service.get_publisher(manifest.publisher).suspended
    except NotFound:
        suspended = False  # submit names the missing publisher
    history = service.list_releases({"plugin": manifest.id, "limit": 100}).items
    release = next((r for r in history if r.version == version and r.state != "checks_failed"), None)
    if suspended:
        # Suspended publishers can neither submit nor have releases approved, and none of their
        # plugins runs: say so rather than report an approved release that is not served.
        found = f"release {release.id} {release.state}" if release is not None else "not submitted"
        return (
            f"{manifest.id} {version}: {found}, but publisher {manifest.publisher} is suspended, so it "
            f"does not run (`fulcrum registry reinstate-publisher {manifest.publisher}`)"
        )
    if release is None:
        project = source_tree(distribution)
        if project is None:
            return f"{manifest.id} {version}: no source tree to build a wheel from; submit it by hand"
        try:
            filename, wheel = build_wheel(project, cache_dir)
        except WheelBuildError as exc:
            return f"{manifest.id} {version}: {exc}"
        release = service.submit(
            wheel, filename=filename, publisher_id=manifest.publisher, submitted_by=DEMO_SUBMITTER
        )
        if release.state == "checks_failed":
            return f"{manifest.id} {version}: checks failed: {', '.join(release.failed_checks)}"
    release = _approve(service, release)
    return f"{manifest.id} {version}: release {release.id} {release.state}"


def seed_registry(service: RegistryService, cache_dir: Path) -> list[str]:
    """Create the demo publishers and publish the demo plugins; one report line per plugin."""
    lines = [f"{_publishers(service)} new demo publishers"]
    lines += [_publish(service, name, cache_dir) for name in DEMO_PLUGINS]
    return lines
