"""Repository functions: each takes the session as the keyword argument ``session``."""
