"""Settings of the inventory service: the shared base plus what is inventory's own."""

from service_runtime.settings import build

globals().update(build("inventory", apps=["catalogue", "stock"], urlconf="config.urls"))

MESSAGING_HANDLERS = "stock.handlers.HANDLERS"
# What `manage.py run_worker` runs, each in a thread of its own (messaging.worker.Job).
WORKER_JOBS = ("messaging.consumer.Consumer", "messaging.relay.OutboxRelay")
