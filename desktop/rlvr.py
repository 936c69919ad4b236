"""Learning from verifiable rewards: sample answers to checkable prompts, score them, and hand GRPO groups to the trainer.

The pool is every prompt that carries a verifier: imported tasks (their split keeps eval prompts out of training)
and chat questions with a check attached (one in HOLDOUT_EVERY of those is held out for measuring). Answers are
sampled on the app's own engine; the trainer recomputes their log-probabilities in torch.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from desktop.engine import Engine, SamplingParams
from desktop.signals import Signals
from desktop.verifiers import verify

HOLDOUT_EVERY = 4
"""Chat checks have no split: every fourth (by a stable hash) measures instead of training."""
LONG_ANSWER_KINDS = ("python", "json")
"""Verifiers whose answers may need many tokens; every other kind checks a short answer."""
EXAMPLES_SHOWN = 5


@dataclass(frozen=True)
class Task:
    """A prompt and the verifier that judges any answer to it."""

    key: str
    prompt: str
    spec: dict
    family: str


@dataclass(frozen=True)
class Group:
    """k sampled answers to one task and the reward each earned (1 passed, 0 not)."""

    task: Task
    answers: tuple[str, ...]
    rewards: tuple[float, ...]

    @property
    def informative(self) -> bool:
        """Only groups whose answers scored differently carry a group-relative signal."""
        return len(set(self.rewards)) > 1


@dataclass
class PassRate:
    """Greedy pass rate overall and per task family, with each task's answer, for before/after reports."""

    passed: dict[str, bool] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    families: dict[str, str] = field(default_factory=dict)

    @property
    def overall(self) -> float:
        return sum(self.passed.values()) / len(self.passed) if self.passed else 0.0

    def per_family(self) -> dict[str, float]:
        """Pass rate of each family, by name."""
        totals: dict[str, list[bool]] = {}
        for key, ok in self.passed.items():
            totals.setdefault(self.families[key], []).append(ok)
        return {family: sum(oks) / len(oks) for family, oks in sorted(totals.items())}

    def summary(self) -> dict[str, Any]:
        return {"overall": self.overall, "per_family": self.per_family()}


def pool(signals: Signals) -> tuple[list[Task], list[Task]]:
    """(training prompts, held-out prompts) from imported tasks and checked chat questions."""
    train, held = [], []
    for row in signals.tasks():
        task = Task(f"task:{row['id']}", row["prompt"], row["spec"], row["family"])
        (train if row["split"] == "train" else held).append(task)
    for row in signals.checked_questions():
        task = Task(f"check:{row['id']}", row["prompt"], row["spec"], f"chat {row['spec']['kind']}")
        (held if zlib.crc32(task.key.encode()) % HOLDOUT_EVERY == 0 else train).append(task)
    return train, held


def reward(task: Task, answer: str) -> float:
    """1 when the task's verifier passes the answer (code runs in the sandbox), else 0."""
    return 1.0 if verify(task.spec, answer).passed else 0.0


def _ask(task: Task) -> list[dict[str, str]]:
    return [{"role": "user", "content": task.prompt}]


def budget(task: Task, params: SamplingParams, short_tokens: int) -> SamplingParams:
    """A short answer's check is decided in its first tokens: cap them, so sampling is not spent on rambling."""
    if task.spec.get("kind") in LONG_ANSWER_KINDS:
        return params
    return replace(params, max_tokens=min(params.max_tokens, short_tokens))


def sample_groups(engine: Engine, tasks: Sequence[Task], samples: int, params: SamplingParams, seed: int,
                  short_tokens: int, first: int | None = None) -> list[Group]:
    """Up to k answers per task from the current generation, each scored by the task's verifier.

    When the first answers all score the same the task stops there: most of a small model's groups pass or fail
    together, carry no signal, and would take most of the sampling time.
    """
    groups = []
    for index, task in enumerate(tasks):
        answers: list[str] = []
        rewards: list[float] = []
        for k in range(samples):
            if first is not None and k == first and len(set(rewards)) == 1:
                break
            engine.set_seed(seed * 1_000_003 + index * samples + k)
            answers.append(engine.chat(_ask(task), budget(task, params, short_tokens)).text)
            rewards.append(reward(task, answers[-1]))
        groups.append(Group(task, tuple(answers), tuple(rewards)))
    return groups


def rollout_rows(groups: Sequence[Group]) -> list[dict[str, Any]]:
    """The trainer's rollouts.jsonl rows; it computes the advantages and skips groups without spread."""
    return [
        {"prompt": _ask(g.task), "completion": answer, "reward": r, "group": g.task.key}
        for g in groups for answer, r in zip(g.answers, g.rewards)
    ]


def solutions(groups: Sequence[Group]) -> list[tuple[Task, str]]:
    """Distinct passing answers: they join the supervised data of this dream and of later ones."""
    found = {}
    for group in groups:
        for answer, r in zip(group.answers, group.rewards):
            if r > 0 and answer.strip():
                found[(group.task.key, answer.strip())] = (group.task, answer.strip())
    return list(found.values())


def solution_records(solved: Sequence[tuple[Task, str]]) -> list[dict[str, Any]]:
    """This dream's passing answers in the shape the solutions table returns, so they train at once."""
    return [{"task_key": task.key, "prompt": task.prompt, "answer": answer} for task, answer in solved]


def pass_rate(engine: Engine, tasks: Sequence[Task], params: SamplingParams, short_tokens: int) -> PassRate:
    """Greedy answers to every task, scored: the measure a dream must raise."""
    result = PassRate()
    for task in tasks:
        answer = engine.chat(_ask(task), budget(task, params, short_tokens)).text
        result.answers[task.key] = answer
        result.passed[task.key] = reward(task, answer) > 0
        result.families[task.key] = task.family
    return result


def changed(before: PassRate, after: PassRate, tasks: Sequence[Task], limit: int = EXAMPLES_SHOWN) -> list[dict[str, str]]:
    """Answers that went from failing to passing, for the dream report."""
    flipped = [t for t in tasks if not before.passed.get(t.key) and after.passed.get(t.key)]
    return [{"prompt": t.prompt, "before": before.answers[t.key], "after": after.answers[t.key]} for t in flipped[:limit]]


def regressions(before: PassRate, after: PassRate, tolerance: float) -> list[str]:
    """Families whose pass rate fell by more than tolerance."""
    old, new = before.per_family(), after.per_family()
    return [f"{family} {old[family]:.0%} → {new.get(family, 0.0):.0%}"
            for family in old if new.get(family, 0.0) < old[family] - tolerance]


def choose(tasks: Sequence[Task], count: int, seed: int) -> list[Task]:
    """The dream's batch of pool prompts: a seeded sample, so a resumed dream sees the same batch."""
    chosen = list(tasks)
    random.Random(seed).shuffle(chosen)
    return chosen[:count]


def solution_rows(rows: Sequence[dict[str, Any]], per_task: int) -> list[dict[str, Any]]:
    """SFT rows from passing answers (this dream's and earlier ones'), the per_task shortest per prompt.

    Sampled answers that pass often ramble around the right value ("Adults and children, 83 + 91 = 174."); the
    shortest says just what was asked, and training on rambling cost general answers.
    """
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_task.setdefault(row["task_key"], []).append(row)
    return [
        {"messages": [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["answer"]}]}
        for key in sorted(by_task)
        for row in sorted(by_task[key], key=lambda r: (len(r["answer"]), r["answer"]))[:per_task]
    ]
