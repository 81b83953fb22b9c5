"""Fault injection: the whole system on a private broker and private databases, under faults.

``python -m tests.chaos`` (``make chaos``) runs every scenario and writes ``reports/chaos.md``
and ``reports/chaos.json``; ``tests/chaos/test_chaos_short.py`` runs three short scenarios as
part of ``make test``. Nothing here ever touches the shared PostgreSQL (5432) or RabbitMQ (5672).
"""
