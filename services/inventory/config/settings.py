"""Settings of the inventory service: the shared base plus what is inventory's own."""

from service_runtime.settings import build

globals().update(build("inventory", apps=["catalogue", "stock"], urlconf="config.urls"))

MESSAGING_HANDLERS = "stock.handlers.HANDLERS"
