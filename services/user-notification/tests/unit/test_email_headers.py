"""A notification's e-mail is serialised with plain headers written as they are, and comes out
byte for byte as Django's standard ``compat32`` serialisation would write it."""

from __future__ import annotations

import io
import random
import string
from email.generator import BytesGenerator
from email.message import Message
from email.policy import Compat32, compat32

import pytest

from notifications.email_messages import PLAIN_HEADERS, NotificationEmail, PlainHeadersPolicy

NAMES = ("Subject", "From", "To", "Message-ID", "Date", "X-Long-Header-Name-For-Tests")
PIECES = [
    *string.printable,  # includes \t, \n, \r, \x0b, \x0c
    "\x00",
    "\x7f",
    "é",
    "Ω",
    "注",
    "\udcff",  # a surrogate, as undecodable bytes leave in a header
    "=?utf-8?q?",
    "  ",
]


def _serialised(message: Message, policy: Compat32, linesep: str) -> bytes:
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=policy.clone(linesep=linesep)).flatten(message)
    return out.getvalue()


@pytest.mark.parametrize("cte_type", ["7bit", "8bit"])  # fold_binary sanitises for 7bit only
@pytest.mark.parametrize("linesep", ["\n", "\r\n"])
def test_every_header_is_written_as_compat32_writes_it(linesep: str, cte_type: str) -> None:
    generator = random.Random(20261203)
    plain = PlainHeadersPolicy(linesep=linesep, cte_type=cte_type)
    standard = Compat32(linesep=linesep, cte_type=cte_type)
    short_cut = 0
    for _ in range(5000):
        name = generator.choice(NAMES)
        size = generator.choice([0, 1, 5, 20, 50, 60, 70, 77, 78, 79, 100, 200])
        pool = string.printable[:-5] + "\t" if generator.random() < 0.7 else PIECES
        value = "".join(generator.choice(pool) for _ in range(size))
        for fold in ("fold", "fold_binary"):
            try:
                expected = getattr(standard, fold)(name, value)
            except Exception as exc:  # what the standard way refuses, the plain way refuses too
                with pytest.raises(type(exc)):
                    getattr(plain, fold)(name, value)
                continue
            assert getattr(plain, fold)(name, value) == expected, (fold, name, value)
        short_cut += len(name) + 2 + len(value) <= 78 and all(
            c == "\t" or " " <= c <= "~" for c in value
        )
    assert short_cut > 1000  # the plain way was taken often enough to be tested


@pytest.mark.parametrize(
    ("subject", "to"),
    [
        ("Order 6f1c0a4e-8d7b-4c1e-9f3a-2b5d7e9c1a3f confirmed", "alice@example.com"),
        ("Order 6f1c0a4e confirmed: " + "a long title that has to be folded " * 3, "b@x.org"),
        ("Commande 6f1c0a4e confirmée", "Zoë Ünal <zoe@example.com>"),
    ],
)
@pytest.mark.parametrize("linesep", ["\n", "\r\n"])
def test_a_whole_e_mail_comes_out_byte_for_byte_as_before(
    subject: str, to: str, linesep: str
) -> None:
    mail = NotificationEmail(
        subject=subject,
        body="Hello Zoë,\n\nYour order is confirmed.\n\n-- \nThe shop",
        from_email="The Shop <orders@shop.example>",
        to=[to],
        headers={"Message-ID": "<notification-42@shop.example>"},
    )
    message = mail.message()
    assert message.policy is PLAIN_HEADERS  # what every backend serialises with
    assert _serialised(message, PLAIN_HEADERS, linesep) == _serialised(message, compat32, linesep)
