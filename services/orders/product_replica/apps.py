from django.apps import AppConfig


class ProductReplicaConfig(AppConfig):
    name = "product_replica"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Product replica (fed by product.upserted)"
