"""Event versions: a payload that changes gets a new version, so that services deployed one at
a time keep understanding each other while orders flow.

- **Consumers accept the previous version too.** :func:`messaging.envelope.decode` accepts
  every version of an event type that has a schema, checks the payload against the schema of
  the version it was published in, then brings it up to the newest version this code knows
  (each :class:`Change`'s ``up``, in turn): a handler reads one shape, whatever the release of
  the service that published it.
- **Producers publish what their consumers can read.** A service builds the newest payload;
  :func:`for_publishing` writes it in the version to publish (each change's ``down``, newest
  first). Which version that is: ``MESSAGING_EVENT_VERSIONS`` when it names the event type
  ("told otherwise", once every consumer runs a release that reads the new version), else the
  newest version whose change is ``published_by_default``. A change is added with
  ``published_by_default=False``, so a producer upgraded first keeps publishing the version the
  consumers not yet upgraded read; a later release turns it on.
- A payload the older version cannot express (a detail it has no field for, and whose loss
  would change what the consumer does) raises :class:`NotExpressible` in ``down``: the request
  that would publish it is refused, never published in a version that says something else.

``MESSAGING_EVENT_VERSIONS``: empty (the defaults above), ``latest`` (the newest version of
every event type), or ``type=version`` pairs separated by commas (``stock.reserved=2``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from messaging import schemas

Payload = dict[str, Any]
LATEST = "latest"


class NotExpressible(ValueError):
    """A payload that the version to publish has no way to say."""


class BadVersionSetting(ValueError):
    """``MESSAGING_EVENT_VERSIONS`` names an unknown event type or version, or is malformed."""


@dataclass(frozen=True)
class Change:
    """What changed from ``version - 1`` to ``version`` of ``event_type``: ``up`` rewrites a
    payload of the previous version as the new one, ``down`` the new one as the previous."""

    event_type: str
    version: int
    up: Callable[[Payload], Payload]
    down: Callable[[Payload], Payload]
    published_by_default: bool = False


CHANGES: dict[tuple[str, int], Change] = {}


def register(change: Change) -> Change:
    """Add ``change``; both versions must have a schema (``messaging.schemas.EVENTS``)."""
    for version in (change.version - 1, change.version):
        if not schemas.is_known(change.event_type, version):
            raise ValueError(f"{change.event_type} v{version} has no schema")
    CHANGES[(change.event_type, change.version)] = change
    return change


def _change(event_type: str, version: int) -> Change:
    change = CHANGES.get((event_type, version))
    if change is None:
        raise ValueError(f"{event_type}: no change registered from v{version - 1} to v{version}")
    return change


def to_newest(event_type: str, version: int, data: Payload) -> tuple[int, Payload]:
    """``data``, published as ``version``, in the newest version this code reads."""
    newest = schemas.current_version(event_type)
    for step in range(version + 1, newest + 1):
        data = _change(event_type, step).up(data)
    return newest, data


Pins = Mapping[str, int] | str  # a version per event type, or LATEST


def parse_setting(text: str) -> Pins:
    """``MESSAGING_EVENT_VERSIONS`` read and checked against the known schemas."""
    text = text.strip()
    if text.lower() == LATEST:
        return LATEST
    pins: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        event_type, sep, version = item.partition("=")
        event_type = event_type.strip()
        if not sep or not version.strip().isdigit():
            raise BadVersionSetting(f"MESSAGING_EVENT_VERSIONS: {item!r} is not type=version")
        if not schemas.is_known(event_type, int(version)):
            raise BadVersionSetting(
                f"MESSAGING_EVENT_VERSIONS: {event_type} v{int(version)} has no schema"
            )
        pins[event_type] = int(version)
    return pins


def version_to_publish(event_type: str, pins: Pins) -> int:
    """The version of ``event_type`` a producer publishes under ``pins``."""
    newest = schemas.current_version(event_type)
    if pins == LATEST:
        return newest
    assert not isinstance(pins, str)
    if event_type in pins:
        return pins[event_type]
    version = newest
    while version > 1 and not _change(event_type, version).published_by_default:
        version -= 1
    return version


def for_publishing(event_type: str, data: Payload, pins: Pins) -> tuple[int, Payload]:
    """The newest payload ``data``, written in the version to publish, and that version.

    Raises :class:`NotExpressible` when that version cannot say it."""
    target = version_to_publish(event_type, pins)
    for step in range(schemas.current_version(event_type), target, -1):
        data = _change(event_type, step).down(data)
    return target, data


# The changes of this code's event types; imported last, as they register themselves here.
from messaging import changes  # noqa: E402, F401
