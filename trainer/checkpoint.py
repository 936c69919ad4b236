"""Resuming: a run directory's checkpoint holds everything needed to continue at the step it was taken."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from trainer.atomic import atomic_path

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(run_dir: Path, state: dict) -> None:
    """Writes the adapter, optimizer, step and RNG state; the old checkpoint stays until the new one is whole."""
    with atomic_path(run_dir / CHECKPOINT_NAME) as temp:
        torch.save(state, temp)


def load_checkpoint(run_dir: Path) -> dict | None:
    """The run directory's checkpoint, or None for a fresh run."""
    path = run_dir / CHECKPOINT_NAME
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state() -> dict:
    """Every random source training draws from, to continue the same stream after a resume."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    """Puts the random sources back where the checkpoint left them."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
