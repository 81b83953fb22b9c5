"""Messaging settings, read from Django settings with defaults that work on a laptop."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from django.conf import settings
from django.core.signals import setting_changed

from messaging import versions
from messaging.topology import Names
from service_runtime.settings import DEFAULT_BUSY_GATHER_MS, DEFAULT_PREFETCH


@dataclass(frozen=True)
class MessagingConfig:
    service: str
    broker_url: str
    prefix: str
    handlers_path: str | None
    prefetch: int
    retry_delays_ms: tuple[int, ...]
    heartbeat: int
    # The relay sends only rows still unsent this long after they were written: their writer
    # publishes them right after its commit (``messaging.after_commit``) unless it died or
    # the broker failed it.
    relay_grace_seconds: float = 1.0
    # Off only where nothing may reach a broker at commit (the tests of other things).
    publish_after_commit: bool = True
    # The version of each event type to publish (``messaging.versions``).
    event_versions: versions.Pins = field(default_factory=dict)
    # After the first delivery of a batch, how long the consumer goes on collecting deliveries
    # (up to the prefetch) before it applies them: 0 where latency counts (the saga's steps), a
    # fraction of a second where it does not (notifications), for fewer, larger transactions.
    gather_seconds: float = 0.0
    # Without it, how long a busy consumer goes on collecting (messaging.consumer): a few
    # milliseconds added to a step under load, for fewer, larger transactions.
    busy_gather_seconds: float = 0.0

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    @property
    def max_attempts(self) -> int:
        """The first delivery plus one try per retry delay."""
        return len(self.retry_delays_ms) + 1


@functools.cache
def get_config() -> MessagingConfig:
    """The messaging settings, read once: this runs for every event published and every batch
    consumed. A change through Django's ``override_settings`` (the tests') is seen at once;
    settings are not meant to change otherwise while a process runs."""
    return MessagingConfig(
        service=settings.MESSAGING_SERVICE,
        broker_url=getattr(
            settings, "MESSAGING_BROKER_URL", "amqp://guest:guest@localhost:5672/%2F"
        ),
        prefix=getattr(settings, "MESSAGING_PREFIX", ""),
        handlers_path=getattr(settings, "MESSAGING_HANDLERS", None),
        prefetch=int(getattr(settings, "MESSAGING_PREFETCH", DEFAULT_PREFETCH)),
        retry_delays_ms=tuple(getattr(settings, "MESSAGING_RETRY_DELAYS_MS", (1000, 5000, 30000))),
        heartbeat=int(getattr(settings, "MESSAGING_HEARTBEAT", 30)),
        relay_grace_seconds=float(getattr(settings, "MESSAGING_RELAY_GRACE_SECONDS", 1.0)),
        publish_after_commit=bool(getattr(settings, "MESSAGING_PUBLISH_AFTER_COMMIT", True)),
        event_versions=_event_versions(str(getattr(settings, "MESSAGING_EVENT_VERSIONS", ""))),
        gather_seconds=int(getattr(settings, "MESSAGING_GATHER_MS", 0)) / 1000,
        busy_gather_seconds=int(
            getattr(settings, "MESSAGING_BUSY_GATHER_MS", DEFAULT_BUSY_GATHER_MS)
        )
        / 1000,
    )


# Read once per value.
_event_versions = functools.lru_cache(maxsize=8)(versions.parse_setting)


def _forget(*, setting: str, **_: object) -> None:
    if setting.startswith("MESSAGING_"):
        get_config.cache_clear()


setting_changed.connect(_forget, dispatch_uid="messaging.config.get_config")
