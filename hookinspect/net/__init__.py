"""HTTP on both sides, below every server and sender: aiohttp's server with budgets and caps
(server.py, budgets.py), the one Host and cross-site guard (guard.py), and the exact-bytes client (client.py)."""
