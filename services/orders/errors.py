"""Every error code the orders service sends, beside DRF's own (``invalid``, ``not_found``...).

A raise site takes its code from here, never from a string literal: the values are what
clients match on, so they never change.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_TRANSITION = "invalid_transition"
    ORDER_NOT_CANCELLABLE = "order_not_cancellable"
    ORDER_NOT_SHIPPABLE = "order_not_shippable"
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
