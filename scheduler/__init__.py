"""The scheduler role: leader election, the window check, cron materialisation, the admin API."""
