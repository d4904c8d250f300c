"""The engine of bench/chaos.py and tests/test_stack_chaos.py: clients, webhook receivers, checks."""
