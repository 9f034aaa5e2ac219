"""Text from the network made safe to print on a terminal.

An answer, a session title, an error message or a listing is written by someone else (a model
can be prompted into anything), and a terminal obeys what it prints: ``ESC [ 31 m`` colours,
``ESC ] 0 ;`` retitles the window, ``ESC ] 52 ;`` writes the clipboard, ``ESC P`` talks to the
terminal itself, a carriage return or backspaces overwrite what was shown. :func:`clean` removes
every such sequence whole (an OSC's payload is not shown either) and then every control
character left over, C0, DEL and C1, keeping only newline and tab. rich markup is never
interpreted in these strings either: the chat prints them with ``markup=False`` or as
:class:`rich.text.Text`.
"""

from __future__ import annotations

import re

from rich.text import Text

# ESC-introduced sequences (7-bit) and their 8-bit C1 forms:
_SEQUENCES = re.compile(
    r"""
      (?:\x1b\[|\x9b) [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]?             # CSI ... final
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) .*? (?:\x07|\x1b\\|\x9c|$)  # OSC, DCS, SOS, PM, APC
    | \x1b [\x20-\x2f]* [\x30-\x7e]?                                        # any other escape
    """,
    re.VERBOSE | re.DOTALL,
)
# What is left that a terminal would act on: C0 but tab and newline, DEL, C1.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: object) -> str:
    """``text`` as a string with no terminal control sequence and no control character but
    newline and tab."""
    return _CONTROLS.sub("", _SEQUENCES.sub("", str(text)))


def plain(text: object, style: str = "") -> Text:
    """:func:`clean` ``text`` as rich text: printed as it is, never read as markup."""
    return Text(clean(text), style=style)
