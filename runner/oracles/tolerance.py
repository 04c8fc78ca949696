"""How close is close enough: one tolerance, applied element by element."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class Tolerance:
    """An element passes when |got - want| <= atol + rtol * |want| (for that element); a check when all do."""

    rtol: float = MISSING
    atol: float = MISSING
