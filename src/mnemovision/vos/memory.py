"""A frame memory with a hard capacity and a pluggable eviction policy, so memory stays bounded on
videos of any length.

Entries are what a model stores per memorised frame (tensors keyed by name, e.g. keys [M, D] and
values [M, Dv]) with the frame index and a usage score: the attention weight the entry's slots
received when read (what XMem-style managers keep and evict by; ``memory_attention`` returns it).
Policies, when full:
- ``fifo``: drop the oldest entry;
- ``keep_first``: drop the oldest entry but never the first one (the annotated frame; XMem/Cutie's
  permanent memory);
- ``usage``: never the first entry; drop the one with the lowest mean usage per read since it was
  added (least frequently used, XMem's long-term rule applied per frame).
Entries marked ``permanent`` (frames where the user gave a mask) are never evicted to make room for
an entry that is not (a full bank of permanent entries declines it); when a permanent entry arrives
and every entry is permanent, the oldest permanent one goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mnemovision.vision.checks import check_int

POLICIES = ("fifo", "keep_first", "usage")


@dataclass
class MemoryEntry:
    frame_index: int
    tensors: dict[str, torch.Tensor]
    permanent: bool = False
    usage: float = 0.0
    reads: int = 0

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


@dataclass
class MemoryBank:
    """At most ``capacity`` entries; ``policy`` in fifo | keep_first | usage."""

    capacity: int = 8
    policy: str = "usage"
    entries: list[MemoryEntry] = field(default_factory=list)
    evicted: int = 0

    def __post_init__(self) -> None:
        check_int("capacity", self.capacity, 1)
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, frame_index: int, tensors: dict[str, torch.Tensor], permanent: bool = False) -> bool:
        """Memorise a frame, evicting first if the bank is full. Returns whether it was stored: a frame
        that is not permanent never displaces a permanent one, so a bank full of permanent entries
        declines it (before, it evicted the oldest of them: a one-slot bank lost its annotated frame
        to the next frame memorised)."""
        if not permanent and len(self.entries) >= self.capacity and all(e.permanent for e in self.entries):
            return False
        while len(self.entries) >= self.capacity:
            self._evict()
        self.entries.append(MemoryEntry(frame_index, dict(tensors), permanent))
        return True

    def _evict(self) -> None:
        candidates = [i for i, e in enumerate(self.entries) if not e.permanent]
        if self.policy in ("keep_first", "usage") and len(candidates) > 1 and candidates[0] == 0:
            candidates = candidates[1:]
        if not candidates:  # everything is permanent: the oldest goes
            candidates = [0]
        if self.policy == "usage":
            victim = min(candidates, key=lambda i: (self.entries[i].usage / max(self.entries[i].reads, 1), self.entries[i].frame_index))
        else:
            victim = candidates[0]
        del self.entries[victim]
        self.evicted += 1

    def stacked(self, name: str) -> torch.Tensor:
        """All entries' ``name`` tensors concatenated along dim 0 (slots), oldest first."""
        return torch.cat([e.tensors[name] for e in self.entries], dim=0)

    def slot_counts(self, name: str) -> list[int]:
        return [e.tensors[name].shape[0] for e in self.entries]

    def record_usage(self, usage: torch.Tensor, name: str = "keys") -> None:
        """Add the per-slot usage [M] of one read (M = total slots, in ``stacked`` order) to the entries."""
        counts = self.slot_counts(name)
        if usage.ndim != 1 or usage.shape[0] != sum(counts):
            raise ValueError(f"usage must be [M] with M = {sum(counts)} slots of {name!r} in the bank, got {list(usage.shape)}")
        for entry, part in zip(self.entries, torch.split(usage.detach().float().cpu(), counts)):
            entry.usage += float(part.mean())
            entry.reads += 1

    def remove_frames(self, keep) -> None:
        """Drop every entry for which ``keep(entry)`` is False (e.g. after an object is removed)."""
        self.entries = [e for e in self.entries if keep(e)]

    def nbytes(self) -> int:
        return sum(e.nbytes() for e in self.entries)

    def clear(self) -> None:
        self.entries.clear()
        self.evicted = 0
