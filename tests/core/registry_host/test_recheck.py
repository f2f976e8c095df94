"""The schedule of held-back plugins: when the registry watcher asks the admission gate again."""

from __future__ import annotations

from fulcrum_core.registry_host.recheck import RecheckSchedule


def test_a_plugin_never_asked_is_due_at_once() -> None:
    """A held entry point the watcher has not asked about yet is due on the first poll."""
    schedule = RecheckSchedule(base=2.0, cap=300.0)
    assert schedule.due({"a", "b"}, now=0.0) == ["a", "b"]


def test_each_refusal_doubles_the_wait_up_to_the_cap() -> None:
    """Refused again and again: the wait doubles from one poll interval and stops growing at the cap."""
    schedule = RecheckSchedule(base=2.0, cap=10.0)
    waits = []
    now = 0.0
    for _ in range(5):
        status = schedule.refused("a", "artifact missing", now=now)
        assert status.next_check is not None
        waits.append(status.next_check - now)
        now = status.next_check
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert schedule.status()["a"].checks == 5


def test_a_plugin_is_due_only_once_its_wait_is_over() -> None:
    """Between refusals the plugin is not asked; at its due time it is."""
    schedule = RecheckSchedule(base=2.0, cap=300.0)
    schedule.refused("a", "in review", now=0.0)
    schedule.refused("a", "in review", now=2.0)  # next check at 6
    assert schedule.due({"a"}, now=4.0) == []
    assert schedule.due({"a"}, now=6.0) == ["a"]


def test_a_fresh_refusal_starts_the_backoff_again() -> None:
    """After a registry change the situation is new: the next wait is one poll interval again."""
    schedule = RecheckSchedule(base=2.0, cap=300.0)
    for now in (0.0, 2.0, 6.0):
        schedule.refused("a", "in review", now=now)
    status = schedule.refused("a", "cannot verify: artifact missing", now=7.0, fresh=True)
    assert (status.checks, status.next_check) == (1, 9.0)
    assert status.reason == "cannot verify: artifact missing"


def test_a_final_refusal_is_never_due() -> None:
    """A copy that is not the reviewed one has no next check, however much time passes."""
    schedule = RecheckSchedule(base=2.0, cap=300.0)
    status = schedule.refused("a", "fulcrum_a/__init__.py differs", now=0.0, final=True)
    assert status.next_check is None
    assert schedule.due({"a"}, now=1e9) == []


def test_admitted_or_no_longer_held_plugins_are_forgotten() -> None:
    """``keep`` drops the entries of plugins that left the held set (imported, or failed to import)."""
    schedule = RecheckSchedule(base=2.0, cap=300.0)
    schedule.refused("a", "in review", now=0.0)
    schedule.refused("b", "in review", now=0.0)
    schedule.keep({"b"})
    assert set(schedule.status()) == {"b"}


def test_the_cap_is_never_below_one_poll_interval() -> None:
    """A poll interval longer than the cap: the watcher still waits one interval, never less."""
    schedule = RecheckSchedule(base=600.0, cap=300.0)
    assert schedule.refused("a", "in review", now=0.0).next_check == 600.0
