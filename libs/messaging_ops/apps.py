from django.apps import AppConfig


class MessagingOpsConfig(AppConfig):
    name = "messaging_ops"
    label = "messaging_ops"
    verbose_name = "Messaging operations (dead letters)"
