"""Tainted text (briefs, issue text, file names): normalise, strip hidden characters, flag tricks.

Tainted text may raise risk and never lower it. Hidden characters are stripped and reported, the text
is NFKC-normalised and case-folded before matching, and size is capped (truncation adds risk).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

MAX_BRIEF_CHARS = 16 * 1024

_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_ZERO_WIDTH = {0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF, 0x180E, 0x00AD, 0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0}


def classify_hidden(cp: int) -> str | None:
    """The kind of an invisible or control code point, or None for an ordinary character."""
    if 0xE0000 <= cp <= 0xE007F:
        return "tag character"
    if cp in _BIDI:
        return "bidi control"
    if cp in _ZERO_WIDTH:
        return "zero-width character"
    if 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF:
        return "variation selector"
    if (cp < 0x20 and cp not in (0x09, 0x0A, 0x0D)) or cp == 0x7F or 0x80 <= cp <= 0x9F:
        return "control character"
    return None


@dataclass(frozen=True)
class HiddenRun:
    kind: str
    offset: int
    count: int
    decoded: str = ""
    """For tag characters: the ASCII text they spell (how instructions are smuggled)."""


@dataclass(frozen=True)
class CleanText:
    text: str
    """Hidden characters removed, NFKC-normalised; use for display and prompts."""
    folded: str
    """`text` case-folded; use for matching."""
    hidden: tuple[HiddenRun, ...] = field(default=())
    truncated: bool = False
    original_length: int = 0

    @property
    def smuggled(self) -> str:
        return "".join(run.decoded for run in self.hidden if run.decoded)


def clean_tainted(raw: str, limit: int = MAX_BRIEF_CHARS) -> CleanText:
    original_length = len(raw)
    truncated = original_length > limit
    if truncated:
        half = limit // 2
        raw = raw[:half] + "\n…\n" + raw[-half:]
    kept: list[str] = []
    runs: list[HiddenRun] = []
    previous_hidden = False
    for index, ch in enumerate(raw):
        kind = classify_hidden(ord(ch))
        if kind is None:
            previous_hidden = False
            kept.append(ch)
            continue
        tag_value = ord(ch) - 0xE0000
        decoded = chr(tag_value) if kind == "tag character" and 0x20 <= tag_value < 0x7F else ""
        if previous_hidden and runs[-1].kind == kind:
            last = runs[-1]
            runs[-1] = HiddenRun(kind, last.offset, last.count + 1, last.decoded + decoded)
        else:
            runs.append(HiddenRun(kind, index, 1, decoded))
        previous_hidden = True
        # A control character that separates words becomes a space so words do not glue together.
        if kind == "control character":
            kept.append(" ")
    text = unicodedata.normalize("NFKC", "".join(kept))
    smuggled = "".join(r.decoded for r in runs)
    folded = text.casefold()
    if smuggled:
        # Instructions spelled in tag characters are matched too: they are what the sender meant.
        folded = folded + "\n" + unicodedata.normalize("NFKC", smuggled).casefold()
    return CleanText(text=text, folded=folded, hidden=tuple(runs), truncated=truncated, original_length=original_length)


# Phrases that try to steer the classifier. They add risk: an honest brief does not need them.
MANIPULATION = re.compile(
    r"(classif\w*|mark|treat|label|rate|score|consider)\s+(this\s+|it\s+|the\s+task\s+)?(as\s+)?(a\s+)?(low|lowest|minimal|no|zero)[\s-]*risk"
    r"|\b(use|route\s+to|send\s+to|pick|choose|select)\s+(the\s+)?(fast|cheap|cheapest|small|fastest)\s+(lane|model|path)"
    r"|\bskip\s+(the\s+)?(verification|checks|tests|review)"
    r"|\bignore\s+(all\s+|any\s+|the\s+)?(previous|prior|above|earlier)\s+(instructions|rules|policy)"
    r"|\bdo\s+not\s+escalate|\bdon'?t\s+escalate|\bno\s+need\s+to\s+(escalate|verify|review)"
    r"|\brisk[_\s-]*score\s*[:=]\s*\d"
)

INCIDENT = re.compile(
    r"\bproduction\s+(incident|outage|down|issue|bug|fire)|\bprod\s+(incident|outage|is\s+down|down)"
    r"|\bsev[\s-]?[0-2]\b|\bp0\b|\bincident\b|\boutage\b|\bpager(duty)?\b|\bon[\s-]?call\b|\bhot[\s-]?fix\b"
)

NEW_CODE = re.compile(
    r"\b(add|adds|adding|implement\w*|create|creates|creating|introduce\w*|build|write|support\s+for|new)\b"
    r"\s+(\w+\s+){0,3}(feature|function|method|class|endpoint|command|option|flag|module|api|support|handler|test|tests|page|component|field|parameter|argument|cli|service|route)"
    r"|\bnew\s+(feature|function|method|class|endpoint|module|file|api)\b|\bimplement\b"
)


def find_phrase(pattern: re.Pattern[str], folded: str) -> str | None:
    match = pattern.search(folded)
    return match.group(0) if match else None
