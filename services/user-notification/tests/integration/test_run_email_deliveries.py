"""``manage.py run_email_deliveries`` as ``make up`` runs it: a process of its own."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from notifications.models import EmailDelivery

pytestmark = pytest.mark.django_db(transaction=True)

SERVICE_DIR = Path(__file__).resolve().parents[2]


def test_sends_after_commit_beats_and_stops_cleanly_on_sigterm(
    make_user, make_message, deliver, mail_server, tmp_path
):
    mail_server.start()
    heartbeat = tmp_path / "worker.heartbeat"
    database = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
        f"{database['NAME']}",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(mail_server.port),
        "LOG_LEVEL": "INFO",
        "WORKER_HEARTBEAT_FILE": str(heartbeat),
    }
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "run_email_deliveries"],
        cwd=SERVICE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        alice = make_user("alice")
        order_id = str(uuid.uuid4())
        data = {"order_id": order_id, "user_id": alice.pk, "reason": "only 1 left"}
        assert deliver(make_message("order.rejected", data)).action == "ack"

        deadline = time.monotonic() + 30
        while not (mail_server.received and heartbeat.exists()):  # beats: it reached the database
            assert worker.poll() is None, worker.communicate()[0]
            assert time.monotonic() < deadline, "no e-mail or no heartbeat"
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=15)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert worker.returncode == 0, output
    assert "stopped after sending 1" in output
    assert not heartbeat.exists()  # stopped: no longer ready
    (message,) = mail_server.received
    assert message["Subject"] == f"Order {order_id} rejected"
    assert "only 1 left" in message.get_payload(decode=True).decode()
    assert EmailDelivery.objects.get().status == "sent"
