from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    label = "messaging"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Messaging (outbox and inbox)"
