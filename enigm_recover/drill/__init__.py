"""Synthetic platforms and incident scenarios for tabletop exercises."""
