"""Settings of the inventory service: the shared base plus what is inventory's own."""

from service_runtime.settings import build, env_int

globals().update(build("inventory", apps=["catalogue", "stock"], urlconf="config.urls"))

MESSAGING_HANDLERS = "stock.handlers.HANDLERS"
# What `manage.py run_worker` runs, each in a thread of its own (messaging.worker.Job).
WORKER_JOBS = (
    "messaging.consumer.Consumer",
    "messaging.relay.OutboxRelay",
    "stock.backorders.BackorderJob",
    "messaging.pruning.PruneJob",
)

# A backordered order that has waited longer than this is served first, taking what it can
# of each delivery (docs/backorders.md); younger ones are completed all at once or not at all.
INVENTORY_BACKORDER_PRIORITY_AFTER_SECONDS = env_int(
    "INVENTORY_BACKORDER_PRIORITY_AFTER_SECONDS", 86400
)
# How often the worker's backorder job serves the waiting lists a pass left for it.
INVENTORY_BACKORDER_SCAN_SECONDS = env_int("INVENTORY_BACKORDER_SCAN_SECONDS", 15)
