"""The development stack: the whole system as local processes, never part of a service.

``local_run`` is ``make up``, ``demo`` is ``make demo`` (``make up`` seeded through the public
APIs by ``seed``); ``system`` starts and supervises every service's processes;
``gateway`` puts the console and every API on one address; ``stack`` starts a whole system on
private databases and broker names for the end-to-end tests, the benchmark and fault injection.
Nothing under ``services/`` or the other ``libs/`` packages imports it.
"""
