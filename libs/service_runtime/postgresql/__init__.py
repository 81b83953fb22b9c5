"""Django's PostgreSQL backend with a health check that costs no round trip (see :mod:`.base`).

Named as ``ENGINE`` (``service_runtime.postgresql``) by :func:`service_runtime.settings.database`.
"""
