"""Operating a service's messaging: its dead-letter queue over REST and as a command.

Every service installs this app beside :mod:`messaging`: ``python manage.py dead_letters`` and
``api/dead-letters/`` (``messaging_ops.urls``, staff only). It builds on the messaging core;
the core never imports it.
"""
