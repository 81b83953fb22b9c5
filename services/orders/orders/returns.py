"""Returns: a customer sends shipped units back (:func:`return_request`), staff receive them
into a warehouse (:func:`return_receive`) and the refund they are worth is recorded and
announced (``return.refunded``: a payment system acts on it; no money moves here).

Both run under the order's row lock, so two returns, or a return and a receipt, of the same
order serialise: the second sees the units the first took, and no unit is returned twice.
The rules themselves are :mod:`orders.return_rules`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Sum
from django.utils import timezone

from errors import ErrorCode
from messaging.outbox import publish_event
from orders import return_rules
from orders.models import OrderLine, Return, ReturnLine, ReturnStatus
from orders.placement import LineRequest, order_log_context
from orders.return_rules import ReceivedLine, ReturnNotAllowed
from orders.services import _lock, _record

logger = logging.getLogger(__name__)


def _counted(units: int) -> str:
    return f"{units} unit{'' if units == 1 else 's'}"


@transaction.atomic
def return_request(
    *,
    order_id: uuid.UUID,
    lines: Sequence[LineRequest],
    reason: str = "",
    actor_user_id: int | None = None,
) -> Return:
    """A new REQUESTED return of ``lines`` of the order: units shipped and not in a return
    already, while the return window (``ORDERS_RETURN_WINDOW_DAYS`` after the order's last
    shipment) is open; a history note and ``return.requested``.

    Raises :class:`ReturnNotAllowed` (nothing shipped, the window closed) and a refusal
    naming ``lines`` (see :func:`orders.return_rules.requested_units`);
    ``Order.DoesNotExist`` for an unknown order."""
    order = _lock(order_id)
    last_shipped_at = order.shipments.aggregate(last=Max("created_at"))["last"]
    return_rules.window_open(
        last_shipped_at, days=settings.ORDERS_RETURN_WINDOW_DAYS, now=timezone.now()
    )
    order_lines = {line.product_id: line for line in order.lines.order_by("id")}
    in_returns = dict(
        ReturnLine.objects.filter(return_request__order=order)
        .values("product_id")
        .annotate(units=Sum("quantity"))
        .values_list("product_id", "units")
    )
    left = return_rules.returnable(
        {p: line.shipped_quantity for p, line in order_lines.items()}, in_returns
    )
    wanted = return_rules.requested_units(lines, left)

    returned = Return.objects.create(
        order=order, user_id=order.user_id, reason=reason, requested_by=actor_user_id
    )
    ReturnLine.objects.bulk_create(
        [
            ReturnLine(
                return_request=returned,
                product_id=product_id,
                sku=order_lines[product_id].sku,
                name=order_lines[product_id].name,
                unit_price=order_lines[product_id].unit_price,
                quantity=units,
            )
            for product_id, units in wanted.items()
        ]
    )
    note = f"return {returned.pk} requested: {_counted(sum(wanted.values()))}"
    _record(order, from_status=order.status, reason=note, actor_user_id=actor_user_id)
    publish_event(
        "return.requested",
        {
            "order_id": str(order.id),
            "user_id": order.user_id,
            "return_id": returned.pk,
            "lines": [{"product_id": p, "quantity": q} for p, q in wanted.items()],
            "reason": reason,
        },
        correlation_id=str(order.id),
    )
    with order_log_context(order.id):
        logger.info("order %s: %s by user %s", order.id, note, actor_user_id)
    return returned


@transaction.atomic
def return_receive(
    *,
    return_id: int,
    warehouse: str,
    lines: Sequence[ReceivedLine],
    actor_user_id: int | None = None,
) -> Return:
    """REQUESTED → RECEIVED into ``warehouse`` (inventory's code): each line's restocked and
    damaged units, the order lines' ``returned_quantity`` and the order's ``refunded_total``
    grown by them, a history note naming the return and its refund, then ``return.received``
    (inventory restocks and writes off) and ``return.refunded``, in this transaction.

    Raises :class:`ReturnNotAllowed` when the return was received already, a refusal naming
    ``lines`` (see :func:`orders.return_rules.received_units`); ``Return.DoesNotExist`` for
    an unknown return."""
    order_id = Return.objects.values_list("order_id", flat=True).get(pk=return_id)
    order = _lock(order_id)  # the order first, as a request takes it: one lock order
    returned = Return.objects.select_for_update().get(pk=return_id)
    if returned.status != ReturnStatus.REQUESTED:
        raise ReturnNotAllowed(
            f"Return {return_id} was received already.", code=ErrorCode.RETURN_ALREADY_RECEIVED
        )
    return_lines = {line.product_id: line for line in returned.lines.order_by("id")}
    received = return_rules.received_units(
        lines, {p: line.quantity for p, line in return_lines.items()}
    )
    amount = return_rules.refund(received, {p: x.unit_price for p, x in return_lines.items()})

    for product_id, line in received.items():
        return_lines[product_id].restocked = line.restocked
        return_lines[product_id].damaged = line.damaged
    ReturnLine.objects.bulk_update(return_lines.values(), ["restocked", "damaged"])
    order_lines = {line.product_id: line for line in order.lines.filter(product_id__in=received)}
    for product_id, line in received.items():
        order_lines[product_id].returned_quantity += line.restocked + line.damaged
    OrderLine.objects.bulk_update(order_lines.values(), ["returned_quantity"])
    returned.status = ReturnStatus.RECEIVED
    returned.warehouse, returned.refund_amount = warehouse, amount
    returned.received_at, returned.received_by = timezone.now(), actor_user_id
    returned.save()
    order.refunded_total += amount
    order.save(update_fields=["refunded_total", "updated_at"])

    restocked = sum(line.restocked for line in received.values())
    damaged = sum(line.damaged for line in received.values())
    note = (
        f"return {returned.pk} received into {warehouse}: {_counted(restocked)} restocked, "
        f"{_counted(damaged)} damaged; refund {amount:.2f}"
    )
    _record(order, from_status=order.status, reason=note, actor_user_id=actor_user_id)
    common = {"order_id": str(order.id), "user_id": order.user_id, "return_id": returned.pk}
    publish_event(
        "return.received",
        {
            **common,
            "warehouse": warehouse,
            # Only the lines of which something came back: the others move no stock.
            "lines": [
                {"product_id": p, "restocked": line.restocked, "damaged": line.damaged}
                for p, line in received.items()
                if line.restocked + line.damaged
            ],
            "refund_amount": f"{amount:.2f}",
        },
        correlation_id=str(order.id),
    )
    publish_event(
        "return.refunded", {**common, "amount": f"{amount:.2f}"}, correlation_id=str(order.id)
    )
    with order_log_context(order.id):
        logger.info("order %s: %s by user %s", order.id, note, actor_user_id)
    return returned
