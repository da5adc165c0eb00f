"""Runbooks: the recovery procedure as a file, and the executor that walks it."""
