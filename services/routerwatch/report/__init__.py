"""Reports people read: the per-tier scoreboard as text or JSON."""
