"""Everything the CLI prints goes through here: control characters are shown escaped, never sent raw.

Model names from a repository's policy, paths from a model's patch, a check's output and a server's
error text reach the transcript; raw, an escape sequence in them would drive the user's terminal
(OSC 52 writes the clipboard, OSC 0 the title, OSC 8 makes links, CSI moves the cursor and repaints
what the user reads). The streams are wrapped once, at start-up, so a new message cannot skip it.
Newline and tab pass; every other C0 control, DEL and the C1 controls (U+0080-U+009F, which some
terminals read as ESC sequences) are printed as `\\xNN`. JSON output escapes them itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["SafeTextStream", "escape_controls", "protect_streams"]

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """`text` with every control character but newline and tab written as `\\xNN`."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class SafeTextStream:
    """A text stream that escapes control characters before they reach the terminal or pipe.

    It has no `buffer`: a writer that went to the bytes underneath would skip the escaping."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(escape_controls(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return self._stream.encoding

    @property
    def errors(self) -> str | None:
        return self._stream.errors

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self._stream, name)


def protect_streams() -> None:
    """Wrap sys.stdout and sys.stderr (not for `serve`, whose stdout carries the protocol)."""
    import sys

    if not isinstance(sys.stdout, SafeTextStream):
        sys.stdout = SafeTextStream(sys.stdout)
    if not isinstance(sys.stderr, SafeTextStream):
        sys.stderr = SafeTextStream(sys.stderr)
