"""Progress from pip's own output lines, for a status bar: what it is doing and roughly how far along.

pip prints one line per phase of each package (``Collecting``, ``Downloading x (800.5 MB)``,
``Processing``, ``Installing collected packages``, ``Successfully installed``). There is no total up
front, so a step's fraction grows with each package collected toward 0.7 (resolution + downloads),
is 0.8 while installing and 1.0 when pip says it succeeded. Good enough to show that a 2.5 GB torch
download is moving; the words say the rest. Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOWNLOADING = re.compile(r"^\s*Downloading (\S+) \(([\d.]+ [kMG]?B)\)")
INSTALLING = re.compile(r"^\s*Installing collected packages: (.+)$")
DONE = re.compile(r"^\s*Successfully installed (.+)$")


@dataclass(frozen=True)
class Update:
    fraction: float  # of the step, 0..1
    message: str


class PipProgress:
    def __init__(self) -> None:
        self.collected = 0

    def feed(self, line: str) -> Update | None:
        """An update for this line, or None when it says nothing worth showing."""
        if m := DOWNLOADING.match(line):
            name = m.group(1).rsplit("/", 1)[-1]
            return Update(self._collect_fraction(), f"Downloading {name} ({m.group(2)})")
        if m := INSTALLING.match(line):
            count = len([p for p in m.group(1).split(",") if p.strip()])
            return Update(0.8, f"Installing {count} package{'s' if count != 1 else ''}")
        if m := DONE.match(line):
            return Update(1.0, f"Installed {m.group(1)}")
        if line.lstrip().startswith(("Collecting", "Processing", "Requirement already satisfied")):
            self.collected += 1
            what = line.strip().split(" ", 1)[1] if " " in line.strip() else line.strip()
            return Update(self._collect_fraction(), f"Collecting {what.rsplit('/', 1)[-1][:80]}")
        return None

    def _collect_fraction(self) -> float:
        return 0.7 * (1 - 0.85 ** self.collected)
