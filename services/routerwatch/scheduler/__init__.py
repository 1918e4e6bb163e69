"""The scheduler inside `routerwatch serve`: drift detectors over the rollups, alerts to Alertmanager."""
