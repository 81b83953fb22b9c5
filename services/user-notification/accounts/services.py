import uuid
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from errors import ErrorCode
from messaging.outbox import publish_event
from service_runtime.errors import refused

USER_EDITABLE_FIELDS = frozenset({"email", "first_name", "last_name", "email_notifications"})


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
    errors: dict[str, list[ValidationError]] = {}
    try:
        user.full_clean(exclude=["password"], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        errors.update(exc.error_dict)
    if User.objects.filter(username__iexact=user.username).exists():
        errors.setdefault("username", []).append(_username_taken())
    if User.objects.filter(email__iexact=user.email).exists():
        errors.setdefault("email", []).append(_email_taken())
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        errors["password"] = exc.error_list
    if errors:
        raise ValidationError(errors)

    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # the same name or address registered concurrently
        message = "A user with that username or e-mail address already exists."
        code = ErrorCode.USERNAME_OR_EMAIL_TAKEN
        raise refused(message, code=code, field=NON_FIELD_ERRORS) from exc

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


@transaction.atomic
def user_update(*, user: User, **changes: Any) -> User:
    """Change the caller's own e-mail address, names or e-mail preference.

    Raises ``ValidationError`` (per field) for an invalid value or an address someone else has.
    """
    unknown = set(changes) - USER_EDITABLE_FIELDS
    if unknown:
        refusal = refused("This field cannot be changed.", code=ErrorCode.FIELD_NOT_EDITABLE)
        raise ValidationError({name: refusal for name in unknown})
    if "email" in changes:
        changes["email"] = User.objects.normalize_email(changes["email"])
        if User.objects.filter(email__iexact=changes["email"]).exclude(pk=user.pk).exists():
            raise _email_taken(field="email")
    for name, value in changes.items():
        setattr(user, name, value)
    untouched = [field.name for field in User._meta.fields if field.name not in changes]
    user.full_clean(exclude=untouched, validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            user.save(update_fields=list(changes))
    except IntegrityError as exc:  # the same address taken concurrently
        raise _email_taken(field="email") from exc
    return user


def _username_taken() -> ValidationError:
    return refused("A user with that username already exists.", code=ErrorCode.USERNAME_TAKEN)


def _email_taken(*, field: str | None = None) -> ValidationError:
    message = "A user with that e-mail address already exists."
    return refused(message, code=ErrorCode.EMAIL_TAKEN, field=field)
