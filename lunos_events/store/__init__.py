"""The database: engines, tables, migrations, and the Store port (store/transactions.py)."""
