"""The cross-service audit: the two sides of the order saga compared through the services'
staff APIs only (no service reads another's database).

``python -m saga_audit`` prints the drift it finds and exits 1 (0: none, 2: could not audit);
the orders worker's ``audit`` job runs the same comparison periodically and exports the count as
``saga_audit_drift`` (``docs/operations.md``, "Cross-service audit").
"""
