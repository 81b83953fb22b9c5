from django.db.models import QuerySet

from accounts.models import User


def user_get(*, user_id: int) -> User | None:
    return User.objects.filter(pk=user_id).first()


def user_get_active(*, user_id: int) -> User | None:
    return User.objects.filter(pk=user_id, is_active=True).first()


def user_list_staff() -> QuerySet[User]:
    """Active staff accounts, the ones told about stock running low."""
    return User.objects.filter(is_staff=True, is_active=True).order_by("pk")
