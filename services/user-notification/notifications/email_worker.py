"""The e-mail job of the user-notification worker (``run_worker``): sends notifications' e-mail
copies after their transaction committed, outside any consumer's transaction, in a thread of its
own.

**Waking.** Scheduling a delivery sends a PostgreSQL ``NOTIFY`` (once per transaction) in the
notification's transaction (``notifications.services.notification_create``) and the worker
``LISTEN``s, so it wakes when that transaction commits (never for one rolled back). It also
wakes when the earliest retry falls due, and at least every second as a safety net; on SQLite
it polls (``messaging.worker.SQLITE_POLL_SECONDS``).

**Claiming.** Due rows are claimed in batches (``BATCH_SIZE``), each in one statement that
commits before any SMTP traffic (``SELECT ... FOR UPDATE SKIP LOCKED`` feeding an ``UPDATE ...
RETURNING``: ``pending`` -> ``sending``, one more attempt; the ORM in a short transaction on
SQLite), so any number of workers can run and none ever sends a delivery that another one holds.
A batch goes over one connection to the mail server, each message on its own so that each
outcome is known, and its sent messages are recorded together in one statement. A full batch is
followed at once by the next claim; only a partial one asks when the next retry is due.

**Never twice.** A window cannot be closed: between the mail server accepting a message and the
worker recording ``sent`` (at the end of its batch, or sooner: a long batch records what went out
every ``RECORD_SENT_EVERY_SECONDS``). A worker that dies there leaves its rows in ``sending``;
once the claim is older than ``EMAIL_SENDING_LEASE_SECONDS`` they become ``failed`` and are not
sent again. Likewise a connection that breaks while a message is on its way (the server may have
taken it) fails that delivery at once, and the rest of the batch is given back untried. Only an
answer proving that nothing went out (the server cannot be reached, refuses the login, or
replies 4xx/5xx to the sender, recipient or data) is retried, with exponential back-off
(``EMAIL_RETRY_BASE_SECONDS`` doubled each time), until ``EMAIL_MAX_ATTEMPTS``; then
``failed``. This is at-most-once on purpose: a rare lost e-mail (its notification is still in
the app, and the row says why) is better than a duplicate.
While the database is down after a send, the worker keeps the outcome and retries recording it.
"""

from __future__ import annotations

import enum
import logging
import math
import smtplib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core import mail
from django.db import connection
from django.utils import timezone

from messaging.worker import Job, quietly
from notifications.email_deliveries import (
    NOTIFY_CHANNEL,
    email_deliveries_claim,
    email_deliveries_expire_claims,
    email_deliveries_mark_refused,
    email_deliveries_mark_sent,
    email_deliveries_release,
    email_delivery_mark_unknown,
)
from notifications.email_messages import email_message_build
from notifications.models import EmailDelivery
from notifications.selectors import email_delivery_next_due

logger = logging.getLogger("notifications.email")

POLL_SECONDS = 1.0
MIN_WAIT_SECONDS = 0.05  # a due row another worker is claiming must not make this one spin
EXPIRE_CLAIMS_EVERY_SECONDS = 30.0
BATCH_SIZE = 100  # claimed in one statement, sent over one connection, recorded in one
# A long batch records what went out at least this often: the window in which a worker that
# dies leaves a sent e-mail to be marked failed stays short.
RECORD_SENT_EVERY_SECONDS = 1.0
# Answers proving that the server did not take the message: safe to send it again later.
REFUSED: tuple[type[Exception], ...] = (
    smtplib.SMTPHeloError,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPDataError,
    smtplib.SMTPNotSupportedError,
)
T = TypeVar("T")


class Outcome(enum.Enum):
    """What became of one message of a batch."""

    SENT = "sent"  # the server took it
    REFUSED = "refused"  # nothing went out: recorded for a retry (or given up)
    UNKNOWN = "unknown"  # the connection broke on the way: recorded failed, connection dropped


class EmailDeliveryJob(Job):
    """Sends due e-mail deliveries until stopped; survives database outages."""

    name = "email"
    log = logger
    notify_channel = NOTIFY_CHANNEL
    # E-mail is not in a hurry: after a wake-up, let the commits that follow join its batch,
    # rather than paying a claim, a mail connection and a record per e-mail.
    gather_seconds = 0.2
    start_line = "e-mail deliveries starting ({backend})"
    stop_line = "e-mail deliveries stopped after sending {sent}"

    def __init__(self, *, batch_size: int = BATCH_SIZE, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_attempts: int = settings.EMAIL_MAX_ATTEMPTS
        self.retry_base_seconds: float = settings.EMAIL_RETRY_BASE_SECONDS
        self.lease_seconds: float = settings.EMAIL_SENDING_LEASE_SECONDS
        self.backend: str = settings.EMAIL_BACKEND
        self.sent = 0
        self._claims_expired_at = -math.inf

    def work(self) -> bool:
        # Ready once the database answered (the mail server may not); a full batch: more is due.
        return self.run_once() >= self.batch_size

    def wait_seconds(self) -> float:
        return self._seconds_until_due()

    def run_once(self) -> int:
        """Send the deliveries due now (one batch); how many were claimed."""
        self._database.before_work()  # the connection checked only after an idle spell
        self._expire_claims()
        if connection.vendor != "postgresql":
            due = email_delivery_next_due()  # a read first: on SQLite a claim locks the database
            if due is None or due > timezone.now():
                self._database.answered()
                return 0
        claimed = email_deliveries_claim(limit=self.batch_size)
        if claimed:
            self._send(claimed)
        self._database.answered()
        return len(claimed)

    def _send(self, claimed: list[EmailDelivery]) -> None:
        """Send a claimed batch over one connection to the mail server; record the sent ones
        together (at the end, and every ``RECORD_SENT_EVERY_SECONDS`` of a long batch)."""
        backend = mail.get_connection(fail_silently=False)
        try:
            backend.open()
        except Exception as exc:  # unreachable, or TLS or login refused: nothing went out
            logger.warning(
                "mail server unavailable (%s): %d e-mails wait", _describe(exc), len(claimed)
            )
            self._refused(claimed, _describe(exc))
            return
        sent: list[EmailDelivery] = []
        recorded_at = time.monotonic()
        try:
            for index, delivery in enumerate(claimed):
                if self.stop_event.is_set():  # stopping: give back what was not tried
                    self._record(email_deliveries_release, deliveries=claimed[index:])
                    return
                outcome = self._send_one(backend, delivery)
                if outcome is Outcome.SENT:
                    sent.append(delivery)
                    if time.monotonic() - recorded_at >= RECORD_SENT_EVERY_SECONDS:
                        self._record_sent(sent)
                        sent, recorded_at = [], time.monotonic()
                elif outcome is Outcome.UNKNOWN:  # the connection cannot be trusted
                    self._record(email_deliveries_release, deliveries=claimed[index + 1 :])
                    return
        finally:
            try:
                if sent:  # whatever ended the batch, what went out is recorded
                    self._record_sent(sent)
            finally:
                quietly(backend.close)

    def _send_one(self, backend: Any, delivery: EmailDelivery) -> Outcome:
        """Send one on the batch's connection; refusals and unknown outcomes are recorded here,
        the sent ones by the caller, with the rest of the batch."""
        notification_id = delivery.notification_id
        try:
            sent = backend.send_messages([email_message_build(delivery=delivery)])
        except REFUSED as exc:
            self._refused([delivery], _describe(exc))
            return Outcome.REFUSED
        except (smtplib.SMTPException, OSError) as exc:
            logger.error(
                "e-mail of notification %s may have gone out (%s): not retried",
                notification_id,
                _describe(exc),
            )
            self._record(email_delivery_mark_unknown, delivery=delivery, error=_describe(exc))
            return Outcome.UNKNOWN
        except Exception as exc:  # the message could not even be built: nothing went out
            logger.exception("e-mail of notification %s could not be built", notification_id)
            self._refused([delivery], _describe(exc))
            return Outcome.REFUSED
        if not sent:
            self._refused([delivery], "the e-mail backend sent nothing")
            return Outcome.REFUSED
        return Outcome.SENT

    def _record_sent(self, deliveries: list[EmailDelivery]) -> None:
        self._record(email_deliveries_mark_sent, deliveries=deliveries)
        self.sent += len(deliveries)
        for delivery in deliveries:
            logger.info(
                "e-mailed notification %s (attempt %d)", delivery.notification_id, delivery.attempts
            )

    def _refused(self, deliveries: list[EmailDelivery], error: str) -> None:
        given_up = self._record(
            email_deliveries_mark_refused,
            deliveries=deliveries,
            error=error,
            max_attempts=self.max_attempts,
            retry_base_seconds=self.retry_base_seconds,
        )
        for delivery in given_up:
            logger.error(
                "gave up e-mailing notification %s after %d attempts: %s",
                delivery.notification_id,
                delivery.attempts,
                error,
            )

    def _record(self, write: Callable[..., T], **kwargs: Any) -> T:
        """Run a write, waiting out a database outage: an outcome, once known, is not lost."""
        return self.until_database_answers(lambda: write(**kwargs))

    def _expire_claims(self) -> None:
        if time.monotonic() - self._claims_expired_at < EXPIRE_CLAIMS_EVERY_SECONDS:
            return
        expired = email_deliveries_expire_claims(lease_seconds=self.lease_seconds)
        self._claims_expired_at = time.monotonic()
        if expired:
            logger.error(
                "%d e-mail deliveries were left 'sending' by a worker that stopped: "
                "marked failed, not sent again",
                expired,
            )

    def _seconds_until_due(self) -> float:
        due = email_delivery_next_due()
        if due is None:
            return self.poll_seconds
        wait = (due - timezone.now()).total_seconds()
        return min(max(wait, MIN_WAIT_SECONDS), self.poll_seconds)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
