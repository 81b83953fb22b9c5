"""Every error code the user-notification service names, beside DRF's own (``invalid``...).

A raise site takes its code from here, never from a string literal: the values are what
clients (and, for a refused field, whoever catches the ``ValidationError``) match on, so they
never change.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    # 401s of the token endpoints and of an account gone since its token was issued.
    BAD_CREDENTIALS = "bad_credentials"
    TOKEN_NOT_VALID = "token_not_valid"  # noqa: S105 (an error code, not a secret)
    NO_ACTIVE_ACCOUNT = "no_active_account"
    USER_INACTIVE = "user_inactive"
    # A field refused by a service's rule: a 400 ``invalid``, this code on the field's error.
    USERNAME_TAKEN = "username_taken"
    EMAIL_TAKEN = "email_taken"
    USERNAME_OR_EMAIL_TAKEN = "username_or_email_taken"  # registered concurrently
    FIELD_NOT_EDITABLE = "field_not_editable"
