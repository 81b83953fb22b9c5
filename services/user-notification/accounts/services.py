import uuid

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from messaging.outbox import publish_event


@transaction.atomic
def user_register(
    *, username: str, email: str, password: str, correlation_id: str | None = None
) -> User:
    """Create a customer account and announce it with ``user.registered``, in one transaction.

    Raises ``ValidationError`` (per field) for a taken username or e-mail address, an invalid
    field or a password the configured validators refuse.
    """
    user = User(
        username=User.normalize_username(username), email=User.objects.normalize_email(email)
    )
    errors: dict[str, list[str]] = {}
    try:
        user.full_clean(exclude=["password"], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if User.objects.filter(username__iexact=user.username).exists():
        errors.setdefault("username", []).append("A user with that username already exists.")
    if User.objects.filter(email__iexact=user.email).exists():
        errors.setdefault("email", []).append("A user with that e-mail address already exists.")
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        errors["password"] = exc.messages
    if errors:
        raise ValidationError(errors)

    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # the same name or address registered concurrently
        raise ValidationError(
            {NON_FIELD_ERRORS: ["A user with that username or e-mail address already exists."]}
        ) from exc

    publish_event(
        "user.registered",
        {"user_id": user.pk, "username": user.username, "email": user.email},
        correlation_id=correlation_id or str(uuid.uuid4()),
    )
    return user


@transaction.atomic
def superuser_ensure(*, username: str, email: str, password: str) -> tuple[User, bool]:
    """The staff account named ``username``, created unless it exists; True when created.

    An existing account is left as it is: never promoted, its password never changed.
    """
    existing = User.objects.filter(username__iexact=username).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            user = User.objects.create_superuser(username=username, email=email, password=password)
    except IntegrityError:
        concurrent = User.objects.filter(username__iexact=username).first()
        if concurrent is None:  # not a concurrent creation: the e-mail address is taken
            raise
        return concurrent, False
    return user, True
