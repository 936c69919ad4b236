"""When to dream: idle long enough, nothing generating, something new to learn, and power allowing."""

from __future__ import annotations

from pathlib import Path

from desktop.settings import Settings

POWER_SUPPLIES = Path("/sys/class/power_supply")


def on_ac_power(root: Path = POWER_SUPPLIES) -> bool | None:
    """True/False on a Linux laptop (a Mains supply's online flag), None where the machine does not say."""
    mains = [p for p in root.glob("*") if (p / "type").exists() and (p / "type").read_text().strip() == "Mains"]
    if not mains:
        return None
    return any((p / "online").exists() and (p / "online").read_text().strip() == "1" for p in mains)


def dream_due(settings: Settings, idle_s: float, busy: bool, new_items: int, on_ac: bool | None) -> tuple[bool, str]:
    """Whether a dream may start now, and a sentence for the Dreams panel saying why (not)."""
    if not settings.dreams_enabled:
        return False, "Dreams are off (Settings)."
    if new_items == 0:
        return False, "Nothing new to learn since the last dream."
    if settings.dream_on_ac_only and on_ac is False:
        return False, "Waiting for AC power."
    if busy:
        return False, "Waiting until the answer is finished."
    wait_s = settings.dream_idle_minutes * 60 - idle_s
    if wait_s > 0:
        return False, f"Next dream after {settings.dream_idle_minutes} min idle (in {max(1, round(wait_s / 60))} min)."
    return True, "Dreaming."
