"""The `mlops` command (`main.py`) and its API client (`client.py`), for the local stack
and for deployed stacks."""
