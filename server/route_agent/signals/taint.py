"""Tainted text (briefs, issue text, file names): normalise, strip hidden characters, flag tricks.

Tainted text may raise risk and never lower it. Hidden characters are stripped and reported, the text
is NFKC-normalised and case-folded before matching, and size is capped (truncation adds risk).

Never lower means: adding text to a brief never removes a signal. So matching does not use the
16 KB head-and-tail display copy (a longer brief would push a phrase out of it) but the whole brief
up to `MAX_SCAN_CHARS` from its start, a prefix that appending can only extend.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

MAX_BRIEF_CHARS = 16 * 1024
"""The brief kept for display and prompts (head and tail)."""
MAX_SCAN_CHARS = 1024 * 1024
"""How much of the brief, from its start, is examined for signals."""

_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_ZERO_WIDTH = {0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF, 0x180E,
               0x00AD, 0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0}


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


def _char_class(code_points: set[int] | range) -> str:
    return "".join(re.escape(chr(cp)) for cp in sorted(code_points))


_CONTROLS = {*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)}
# One regex finds every hidden character at C speed; `classify_hidden` names each one found.
_HIDDEN = re.compile(
    "[" + _char_class(_BIDI | _ZERO_WIDTH | _CONTROLS)
    + "\U000e0000-\U000e007f\ufe00-\ufe0f\U000e0100-\U000e01ef]+"
)
_CONTROL_RUN = re.compile("[" + _char_class(_CONTROLS) + "]+")
# A right-to-left override (RLO, or RLE/RLI) up to what closes it (PDF, PDI, a line break).
_RIGHT_TO_LEFT = re.compile("[\u202e\u202b\u2067]([^\u202c\u2069\n\r\u2029]*)[\u202c\u2069\n\r\u2029]")


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
    """Hidden characters removed, NFKC-normalised, cut to head and tail; for display and prompts."""
    folded: str
    """The examined text (see `scanned`) case-folded, plus what tag characters spell; for matching."""
    hidden: tuple[HiddenRun, ...] = field(default=())
    truncated: bool = False
    original_length: int = 0
    scanned: str = ""
    """Hidden characters removed, NFKC-normalised: the first `MAX_SCAN_CHARS` of the brief."""

    @property
    def smuggled(self) -> str:
        return "\n".join(run.decoded for run in self.hidden if run.decoded)


def _strip_hidden(text: str) -> str:
    # A control character that separates words becomes a space so words do not glue together.
    text = _CONTROL_RUN.sub(" ", text)
    return unicodedata.normalize("NFKC", _HIDDEN.sub("", text))


def _hidden_runs(text: str) -> list[HiddenRun]:
    runs: list[HiddenRun] = []
    for match in _HIDDEN.finditer(text):
        kind: str | None = None
        for index, ch in enumerate(match.group(), start=match.start()):
            current = classify_hidden(ord(ch)) or "zero-width character"
            tag_value = ord(ch) - 0xE0000
            decoded = chr(tag_value) if current == "tag character" and 0x20 <= tag_value < 0x7F else ""
            if current == kind:
                last = runs[-1]
                runs[-1] = HiddenRun(kind, last.offset, last.count + 1, last.decoded + decoded)
            else:
                runs.append(HiddenRun(current, index, 1, decoded))
                kind = current
    return runs


def clean_tainted(raw: str, limit: int = MAX_BRIEF_CHARS, scan_limit: int = MAX_SCAN_CHARS) -> CleanText:
    original_length = len(raw)
    examined = raw[: max(scan_limit, 0)]
    runs = tuple(_hidden_runs(examined))
    scanned = _strip_hidden(examined)
    truncated = original_length > limit
    if truncated:
        half = limit // 2
        text = _strip_hidden(raw[:half] + "\n…\n" + raw[-half:])
    else:
        text = scanned
    folded = scanned.casefold()
    smuggled = "\n".join(run.decoded for run in runs if run.decoded)
    if smuggled:
        # Instructions spelled in tag characters are matched too: they are what the sender meant.
        folded = folded + "\n" + unicodedata.normalize("NFKC", smuggled).casefold()
    for segment in _RIGHT_TO_LEFT.findall(examined):
        # Text stored backwards after a right-to-left override reads forwards on screen: match it
        # as shown. Only closed segments: an open one at the end could still grow when text is added.
        folded = folded + "\n" + _strip_hidden(segment[::-1]).casefold()
    return CleanText(text=text, folded=folded, hidden=runs, truncated=truncated,
                     original_length=original_length, scanned=scanned)


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

DOCS_ONLY = re.compile(
    r"^\W*(add|adds|adding|write|writes|writing|update|updates|updating|improve|improves|improving|fix|fixes|fixing|"
    r"document|documents|documenting|clarify|clarifies|reword|rewords|expand|expands)\s+"
    r"(?:(?:the|a|an|some|more|missing|better|new|api|user|inline|code)\s+)*"
    r"(docs?|documentation|docstrings?|comments?|readme|changelog|release\s+notes|typos?|wording|spelling|examples?\s+in\s+the\s+docs)\b"
)
"""A brief that asks for documentation ("Add docs for ..."): not a request for new code."""


def find_phrase(pattern: re.Pattern[str], folded: str) -> str | None:
    match = pattern.search(folded)
    return match.group(0) if match else None
