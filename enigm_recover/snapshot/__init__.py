"""Manifest, signatures, sealing, unsealing and the scope allow-list."""
