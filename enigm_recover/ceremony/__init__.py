"""Custodians joining a ceremony from their own sessions: the ceremony's folder and socket, its server (the
operator's process) and its client (``enigm-recover ceremony join``), and the share source the pipeline uses."""
