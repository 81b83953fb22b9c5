import os
from typing import Any

from django.core.management.base import BaseCommand

from accounts.services import superuser_ensure


class Command(BaseCommand):
    help = (
        "Create the staff account from DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_EMAIL and "
        "DJANGO_SUPERUSER_PASSWORD; succeed quietly when they are unset or it already exists."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        if not username or not password:
            self.stdout.write(
                "DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD not set: "
                "no staff account created"
            )
            return
        user, created = superuser_ensure(username=username, email=email, password=password)
        if created:
            self.stdout.write(self.style.SUCCESS(f"staff account {user.username!r} created"))
        elif not user.is_staff:
            self.stderr.write(
                self.style.WARNING(
                    f"account {user.username!r} exists but is not staff; it was left unchanged"
                )
            )
        else:
            self.stdout.write(f"staff account {user.username!r} already exists")
