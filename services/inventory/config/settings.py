"""Settings of the inventory service: the shared base plus what is inventory's own."""

from service_runtime.settings import build

_base = build("inventory", apps=["catalogue", "stock"], urlconf="config.urls")
globals().update(_base)

REST_FRAMEWORK = {
    **_base["REST_FRAMEWORK"],
    # Also renders the django ValidationError that services raise for broken business rules.
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
}

MESSAGING_HANDLERS = "stock.handlers.HANDLERS"
