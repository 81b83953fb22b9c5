"""Every error code the orders service sends, beside DRF's own (``invalid``, ``not_found``...).

A raise site takes its code from here, never from a string literal: the values are what
clients match on, so they never change.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_TRANSITION = "invalid_transition"
    ORDER_NOT_CANCELLABLE = "order_not_cancellable"
    ORDER_NOT_SHIPPABLE = "order_not_shippable"
    ALLOCATION_UNKNOWN = "allocation_unknown"
    EVENT_VERSION_TOO_OLD = "event_version_too_old"
    NOTHING_TO_SHIP = "nothing_to_ship"
    PRODUCT_NOT_IN_ORDER = "product_not_in_order"
    MORE_THAN_ALLOCATED = "more_than_allocated"
    DUPLICATE_PRODUCT = "duplicate_product"
    QUANTITY_TOO_SMALL = "quantity_too_small"
    NOTHING_SHIPPED = "nothing_shipped"
    RETURN_WINDOW_CLOSED = "return_window_closed"
    MORE_THAN_RETURNABLE = "more_than_returnable"
    NOTHING_RETURNED = "nothing_returned"
    PRODUCT_NOT_IN_RETURN = "product_not_in_return"
    MORE_THAN_REQUESTED = "more_than_requested"
    RETURN_ALREADY_RECEIVED = "return_already_received"
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
