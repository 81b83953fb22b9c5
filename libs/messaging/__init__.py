"""Messaging shared by every service: envelope, schemas, topology, outbox, inbox, relay, consumer.

Services publish with :func:`messaging.outbox.publish_event` inside the transaction that makes
the state change (the event goes out right after the commit, ``messaging.after_commit``; the
relay sends what is left), and react to events through handlers registered in one dict per service
(``settings.MESSAGING_HANDLERS``), run by the ``run_consumer`` management command.
"""
