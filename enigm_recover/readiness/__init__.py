"""Recovery readiness: scheduled, auditable checks that the snapshots would restore today.

UI-free: ``checks`` runs the checks and returns a ``ReadinessReport``; ``report`` renders it as
TOML, Markdown and a Prometheus textfile. The command line and the app are thin faces over both.
"""
