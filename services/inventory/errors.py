"""Every error code the inventory service names, beside DRF's own (``invalid``, ``not_found``...).

A raise site takes its code from here, never from a string literal. Each is a rule of a service
refusing a request: the API answers it as a 400 ``invalid`` with the message under its field,
and the code stays on the ``ValidationError`` for whoever catches it.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    SKU_TAKEN = "sku_taken"
    CATEGORY_NAME_TAKEN = "category_name_taken"
    CATEGORY_NOT_EMPTY = "category_not_empty"
    ADJUSTMENT_EMPTY = "adjustment_empty"
    ADJUSTMENT_REASON_MISSING = "adjustment_reason_missing"
    STOCK_BELOW_ZERO = "stock_below_zero"
    STOCK_BELOW_RESERVED = "stock_below_reserved"
    PRODUCT_UNKNOWN = "product_unknown"
    WAREHOUSE_UNKNOWN = "warehouse_unknown"
    WAREHOUSE_CODE_TAKEN = "warehouse_code_taken"
    WAREHOUSE_CODE_IMMUTABLE = "warehouse_code_immutable"
    TRANSFER_SAME_WAREHOUSE = "transfer_same_warehouse"
    TRANSFER_EXCEEDS_AVAILABLE = "transfer_exceeds_available"
