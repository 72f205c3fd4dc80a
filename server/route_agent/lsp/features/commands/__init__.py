"""One module per `route-agent.*` command (workspace/executeCommand); registered in features/__init__.py."""
