"""The composition root: builds everything from Settings, runs what is enabled, and the CLI."""
