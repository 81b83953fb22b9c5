"""The benchmark harness: ``make bench`` (``python -m bench``) and ``make bench QUICK=1``.

It starts the whole system on PostgreSQL with production settings, drives it from an asyncio
HTTP client, times every order from its POST to its outcome event, checks that nothing was
oversold or lost, measures two baselines in the same run and writes ``reports/bench.md``.
"""
