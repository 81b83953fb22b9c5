from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class MessagingConfig(AppConfig):
    name = "messaging"
    label = "messaging"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Messaging (outbox and inbox)"

    def ready(self) -> None:
        # A wrong MESSAGING_EVENT_VERSIONS stops the service at start, not at its first event.
        from messaging import versions

        try:
            versions.parse_setting(str(getattr(settings, "MESSAGING_EVENT_VERSIONS", "")))
        except versions.BadVersionSetting as exc:
            raise ImproperlyConfigured(str(exc)) from exc
