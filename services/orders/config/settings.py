"""Settings of the orders service: the shared base (``service_runtime``) plus its own.

Every value comes from the environment; with none set the service runs on a laptop.
"""

from service_runtime.rates import parse_rate
from service_runtime.settings import build, env_int, env_str

globals().update(build("orders", apps=["product_replica", "orders"], urlconf="config.urls"))

MESSAGING_HANDLERS = "orders.handlers.HANDLERS"
# What `manage.py run_worker` runs, each in a thread of its own (messaging.worker.Job).
WORKER_JOBS = (
    "messaging.consumer.Consumer",
    "messaging.relay.OutboxRelay",
    "orders.deadlines.OrderDeadlineJob",
    "messaging.pruning.PruneJob",
    "saga_audit.job.SagaAuditJob",
)

# A PENDING order older than this is cancelled and its reservation (if any) released.
ORDER_PENDING_DEADLINE_SECONDS = env_int("ORDER_PENDING_DEADLINE_SECONDS", 900)
# How often the worker's deadline job looks for PENDING orders past their deadline.
ORDER_DEADLINE_SCAN_SECONDS = env_int("ORDER_DEADLINE_SCAN_SECONDS", 15)
# A BACKORDERED order placed longer ago than this is cancelled by the same job and what it
# holds released; empty or 0: backordered orders wait as long as it takes.
ORDERS_BACKORDER_DEADLINE_SECONDS = env_int("ORDERS_BACKORDER_DEADLINE_SECONDS", 0)
# Shipped units can be returned for this many days after the order's last shipment.
ORDERS_RETURN_WINDOW_DAYS = env_int("ORDERS_RETURN_WINDOW_DAYS", 30)

# Orders a user may place per window ("N/[k]unit", unit s, m, h or d; "off": no limit): a bound
# on a runaway or abusive client, well above what a person or a shop's integration places.
THROTTLE_ORDERS_PER_USER = parse_rate(
    env_str("THROTTLE_ORDERS_PER_USER", "120/m"), name="THROTTLE_ORDERS_PER_USER"
)

# The cross-service audit (saga_audit; docs/operations.md "Cross-service audit"), run by the
# worker's audit job with this staff account every so often; no account: the job is off.
SAGA_AUDIT_USERNAME = env_str("SAGA_AUDIT_USERNAME", "")
SAGA_AUDIT_PASSWORD = env_str("SAGA_AUDIT_PASSWORD", "")
SAGA_AUDIT_EVERY_SECONDS = env_int("SAGA_AUDIT_EVERY_SECONDS", 600)
# Orders and reservations changed more recently than this are in flight and not judged.
SAGA_AUDIT_GRACE_SECONDS = env_int("SAGA_AUDIT_GRACE_SECONDS", 300)
# Only the SHIPPED orders placed in the last this many days are compared; 0: all of them.
SAGA_AUDIT_SHIPPED_DAYS = env_int("SAGA_AUDIT_SHIPPED_DAYS", 7)
# The staff APIs it reads (a gateway serves all three).
SAGA_AUDIT_ORDERS_URL = env_str("SAGA_AUDIT_ORDERS_URL", "http://127.0.0.1:8000")
SAGA_AUDIT_INVENTORY_URL = env_str("SAGA_AUDIT_INVENTORY_URL", "http://127.0.0.1:8000")
SAGA_AUDIT_USERS_URL = env_str("SAGA_AUDIT_USERS_URL", "http://127.0.0.1:8000")
