"""State the server owns: open documents (spliced, not rebuilt) and one risk snapshot per folder."""
