"""`python -m route_agent` is the same as the `route-agent` console script."""

from __future__ import annotations

from route_agent.cli.main import main

if __name__ == "__main__":
    main()
