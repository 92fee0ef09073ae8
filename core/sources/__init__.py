"""Signal sources for the Catalyst job: built-ins ("demo", "jsonl") or a "module:callable"."""
