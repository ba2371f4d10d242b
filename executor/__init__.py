"""The executor role: claim due jobs, publish them through providers, record the outcome."""
