"""The dead-letter queue over REST, for operators: list and inspect, replay, purge (staff only).

Mounted by every service at ``api/dead-letters/`` (``messaging_ops.urls``); each service sees only
its own queue. A message is addressed by its ``message_id``, or, when it has none (a raw poison
message), by a fingerprint of its body and dead-lettering time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from pika.exceptions import AMQPError, ChannelClosedByBroker
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import ViewSet

from identity.permissions import IsStaff
from messaging.config import MessagingConfig, get_config
from messaging_ops import dead_letters
from service_runtime.openapi import errors

BODY_PREVIEW_BYTES = 10 * 1024
Operation = Callable[[MessagingConfig, Callable[[dead_letters.DeadLetter], bool]], int]
MAX_LIMIT = 500
NOT_FOUND = 404  # AMQP reply code of a passive declare on a queue that does not exist


class BrokerUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The message broker cannot be reached right now; try again in a moment."
    default_code = "broker_unavailable"


class TooOldToReplay(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "This dead letter is older than what the inbox remembers."
    default_code = "too_old_to_replay"


def letter_id(letter: dead_letters.DeadLetter) -> str:
    if letter.message_id:
        return letter.message_id
    digest = hashlib.sha256(letter.dead_lettered_at.encode() + b"\0" + letter.body)
    return f"body-{digest.hexdigest()[:24]}"


def _jsonable(value: Any) -> Any:
    """AMQP header values (bytes, timestamps, decimals, nested tables) as JSON values."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _attempts(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def letter_data(letter: dead_letters.DeadLetter) -> dict[str, Any]:
    return {
        "id": letter_id(letter),
        "message_id": letter.message_id,
        "routing_key": letter.routing_key,
        "reason": letter.reason,
        "dead_lettered_at": letter.dead_lettered_at,
        "attempts": _attempts(letter.headers.get("x-attempt")),
        "headers": _jsonable(letter.headers),
        "body_size": len(letter.body),
        "body_preview": letter.body[:BODY_PREVIEW_BYTES].decode(errors="replace"),
        "body_truncated": len(letter.body) > BODY_PREVIEW_BYTES,
    }


class DeadLetterOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="What replay and purge take: the message id if any.")
    message_id = serializers.CharField(allow_null=True)
    routing_key = serializers.CharField(allow_null=True)
    reason = serializers.CharField()
    dead_lettered_at = serializers.CharField()
    attempts = serializers.IntegerField(allow_null=True)
    headers = serializers.DictField()
    body_size = serializers.IntegerField()
    body_preview = serializers.CharField(help_text="The first 10 KB of the body, as text.")
    body_truncated = serializers.BooleanField()


@extend_schema_serializer(many=False)  # the list action answers one object, not an array
class DeadLetterListOutputSerializer(serializers.Serializer):
    service = serializers.CharField()
    queue = serializers.CharField()
    count = serializers.IntegerField(help_text="Messages in the queue (the list may hold fewer).")
    messages = DeadLetterOutputSerializer(many=True)


class DeadLetterReplayOutputSerializer(serializers.Serializer):
    replayed = serializers.IntegerField()
    count = serializers.IntegerField()


class DeadLetterPurgeOutputSerializer(serializers.Serializer):
    purged = serializers.IntegerField()
    count = serializers.IntegerField()


def _queue_missing(exc: ChannelClosedByBroker) -> bool:
    return exc.reply_code == NOT_FOUND


class DeadLetterViewSet(ViewSet):
    """``GET`` lists; ``POST {id}/replay/`` puts one back on the queue; ``{id}/purge/`` drops it."""

    permission_classes = [IsStaff]

    class FilterSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=100)

    @extend_schema(
        parameters=[FilterSerializer],
        responses={200: DeadLetterListOutputSerializer, **errors(400, 401, 403, 503)},
    )
    def list(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        config = get_config()
        queue = config.names.dead_letter_queue(config.service)
        try:
            # The depth first: messages held unacked by the listing would not be counted.
            count = dead_letters.queue_depth(config)
            letters = dead_letters.list_dead_letters(config, filters.validated_data["limit"])
        except ChannelClosedByBroker as exc:
            if not _queue_missing(exc):
                raise BrokerUnavailable() from exc
            count, letters = 0, []  # no consumer has declared it yet: nothing dead-lettered
        except (AMQPError, OSError) as exc:
            raise BrokerUnavailable() from exc
        return Response(
            {
                "service": config.service,
                "queue": queue,
                "count": count,
                "messages": [letter_data(letter) for letter in letters],
            }
        )

    @extend_schema(
        request=None,
        responses={200: DeadLetterReplayOutputSerializer, **errors(401, 403, 404, 409, 503)},
    )
    def replay(self, request: Request, message_id: str) -> Response:
        return self._act(dead_letters.replay, message_id, "replayed")

    @extend_schema(
        request=None,
        responses={200: DeadLetterPurgeOutputSerializer, **errors(401, 403, 404, 503)},
    )
    def purge(self, request: Request, message_id: str) -> Response:
        return self._act(dead_letters.purge, message_id, "purged")

    def _act(self, operation: Operation, message_id: str, past: str) -> Response:
        config = get_config()
        try:
            done = operation(config, lambda letter: letter_id(letter) == message_id)
            count = dead_letters.queue_depth(config)
        except ChannelClosedByBroker as exc:
            if _queue_missing(exc):
                raise NotFound("No dead letter with this id.") from exc
            raise BrokerUnavailable() from exc
        except (AMQPError, OSError) as exc:
            raise BrokerUnavailable() from exc
        except dead_letters.TooOldToReplay as exc:
            raise TooOldToReplay(str(exc)) from exc
        if not done:
            raise NotFound("No dead letter with this id.")
        return Response({past: done, "count": count})
