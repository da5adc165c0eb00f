"""enigm-recover: incident-time recovery of the Enigm platform's recovery-critical state."""

__version__ = "0.1.0"
