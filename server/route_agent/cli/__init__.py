"""The `route-agent` command line."""
