"""`make bench`: Podium against a bare asyncio executor (see run.py)."""
