"""Diff, plan, apply (journaled) and verify a restore."""
