"""The digital twin: simulated-time driver, scenarios and reports."""
