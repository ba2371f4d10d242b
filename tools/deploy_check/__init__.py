"""`make deploy-check`: render, validate and lint everything under deploy/, offline."""
