"""The log: envelope, ids, home, store, transactions. Knows nothing of the CLI or of views."""
