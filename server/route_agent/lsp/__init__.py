"""The language server: risk on hover, routed fixes as code actions, verification as diagnostics.

The only package that imports pygls. Handlers in `features/` are thin; the work is done by pure
functions (in the same modules) that take plain data and return lsprotocol values.
"""
