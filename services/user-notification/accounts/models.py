from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class User(AbstractUser):
    """A customer, or a member of staff when ``is_staff`` is set.

    Usernames and e-mail addresses are unique whatever their case, so "Alice" cannot register
    beside "alice"; the database enforces it even when two registrations race.
    """

    # Whether notifications are also sent by e-mail (they are always shown in the app).
    email_notifications: models.BooleanField = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
            models.UniqueConstraint(
                Lower("email"), condition=~Q(email=""), name="user_email_ci_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.username
