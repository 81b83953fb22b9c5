"""The messaging settings: read once per process, and read again when a test overrides one."""

from __future__ import annotations

from django.test import override_settings

from messaging.config import get_config


def test_the_settings_are_read_once() -> None:
    assert get_config() is get_config()


def test_an_overridden_setting_is_seen_at_once_and_forgotten_after() -> None:
    before = get_config()
    with override_settings(MESSAGING_PREFIX="overridden.", MESSAGING_GATHER_MS=250):
        inside = get_config()
        assert inside.prefix == "overridden."
        assert inside.gather_seconds == 0.25
        assert inside.names.queue("orders") == "overridden.orders"
    after = get_config()
    assert after.prefix == before.prefix
    assert after.gather_seconds == before.gather_seconds


def test_a_setting_of_another_kind_keeps_the_settings_read() -> None:
    before = get_config()
    with override_settings(TIME_ZONE="Europe/Paris"):
        assert get_config() is before
