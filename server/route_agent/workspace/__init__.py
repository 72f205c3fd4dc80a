"""Workspace: git, the change set, worktrees and the user's state directory."""
