"""A dream: rehearse what was taught, train a candidate generation, prove it learned without forgetting, promote it.

Two kinds of learning share one training run: consolidation (taught items, corrections and marks, with the
current generation's own answers as a KL anchor) and, where prompts with verifiers exist, learning from
verifiable rewards (k sampled answers per prompt, scored, GRPO). The gate judges the candidate on both.

Runs as its own low-priority process (`python -m desktop.dream`, also `nightschool dream`), prints JSON progress
lines, and starts the trainer as a child. The database is written once, at the end, in one transaction; a dream
stopped at any point (SIGTERM: the trainer checkpoints, and the next dream with the same inputs resumes) leaves
the current generation and the database as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from desktop import paths, rlvr
from desktop.augment import (
    Fact, correction_probes, held_out, leak_rows, memory_row, plain, replay_rows, told_words, training_rows,
    typical_question,
)
from desktop.atomic import write_text_atomic
from desktop.engine import Engine, LoadOptions, SamplingParams
from desktop.evaluate import Question, Score, score
from desktop.export import build_rows
from desktop.generations import Generations
from desktop.jsonl import objects
from desktop.settings import Settings, SettingsError, load_settings
from desktop.signals import Signals
from desktop.store import Store, utc_now

DATA = Path(__file__).resolve().parent / "data"
EVAL_CONTEXT = 1024
PPL_CONTEXT = 512
DREAM_NICENESS = 10
EXIT_INTERRUPTED = 3
REPLAY = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=64)

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class DreamRecipe:
    """How a dream learns and what it must prove; one place for every knob.

    Measured on the 40 public facts with lr 1e-3, seq 128 × batch 2, 3 epochs (bench probes / near-miss leaks /
    public retention, before 0.00 / 0.00 / 0.95; with memory):
    replayed answers trained as SFT (309 steps)                                0.48 / 0.30 / 0.80
    own answers kept by the KL anchor instead                                  0.53 / 0.35 / 0.90 / 0.83
    + "I don't know" in the fact's frame for other subjects                    0.40 / 0.18 / 0.90 / 0.80
    + direct questions and a memory-format row per fact                        0.58 / 0.28 / 0.85 / 0.85
    those frames kept by the anchor instead of "I don't know"                  0.60 / 0.33 / 0.90 / 0.85
    Learning and leaking still rise together: the 135M model answers "Where does my brother live?" with the
    sister's city. The gate judges leaks on its own held-out frames, whose subjects are unrelated (the cat, the
    boss): on them the default recipe leaks 7 %, on the bench's near subjects 33 %. Tried on the branch
    experiment/near-subjects-dpo (bench probes / bench leaks / own recall / own leaks):
    near subjects chosen by meaning (brother for sister) everywhere           0.36 / 0.25 / 0.70 / 0.30, refused
    those in the anchor, plus DPO of the current answer over the leaked one   0.28 / 0.10 / 0.65 / 0.11, 1042 s
    Both teach the model to withhold the taught value itself ("You haven't told me anything about your car.").
    Tried on experiment/prefill-anchor (bench probes / bench leaks / public retention):
    near frames answered from where a leak would go ("Your brother lives in …"), kept by the anchor  0.54 / 0.33 / 0.85
    + six near subjects per fact from the model's own token embeddings, no "you haven't told me"    0.40 / 0.33 / 0.95
    no "you haven't told me" rows alone                                                              0.63 / 0.40 / 0.90
    A frame trained this way stops leaking (the brother no longer lives in Tromso), but the others do not, and
    every extra near question pulls the real ones back toward the current generation's answers.
    The LoRA's shape and the anchor (same columns; one run each, and repeated runs of one recipe differ by a few
    probes; rank 64 on experiment/lora-shape, the larger anchor on experiment/more-anchor):
    LoRA on the MLP projections only (target_modules gate_proj, up_proj, down_proj)                 0.50 / 0.33 / 0.80
    rank 64, alpha 128 (general answers 100 % → 87 %, refused)                                       0.65 / 0.30 / 0.85
    + anchor weight 2 (refused the same way)                                                        0.56 / 0.25 / 0.80
    80 more general prompts in the anchor, which then paces the dream (444 steps)                   0.63 / 0.33 / 0.80
    With "What is the capital of Chile?" in the anchor instead of Japan's (a public retention question), the default
    was refused twice (0.575 / 0.33 / 0.90, then 0.575 / 0.30 / 0.80). Then, one run each, the gate's verdict last:
    "you haven't told me" never about a subject anything taught mentions (it had denied 4 taught facts)   0.55 / 0.40 / 0.95, promoted
    + nor one sharing a word with it (the denied favourite film had spilled onto the favourite colour)    0.56 / 0.35 / 0.85, promoted
    + possessive subjects and irregular past tenses asked directly                                       0.575 / 0.375 / 0.90, refused
      its retry on the same signals (seed 1)                                                             0.64 / 0.425 / 0.90, promoted
    the defaults with lr 7e-4: no gentler on general answers                                             0.575 / 0.35 / 0.80, refused
    the defaults with 2 epochs (278 steps, 638 s): the same losses ("How many hours are in a day?" rambles) 0.59 / 0.375 / 0.80, refused
    Near frames trained by unlikelihood instead (leak_rows, the trainer's `unlikely` objective): "Your brother lives in"
    must not go on "Tromso", and nothing else about that answer is taught. Near subjects come from groups of related
    ones (brother for sister, coffee for tea), someone else's ("my partner's favourite colour") and "other"; one run
    each, the gate's verdict and the dream's length last:
    a packed row of them per step; subjects nothing taught mentions; frames also in the anchor (417 steps)  0.5625 / 0.15 / 0.85, refused, 1072 s
    2 conversations per step, 6 subjects, every value avoided; taught subjects too; frames out of the anchor 0.49 / 0.10 / 0.90, refused, 963 s
    1 conversation per step, 4 subjects, every value avoided, taught subjects left out (357 steps)          0.475 / 0.20 / 0.90, promoted, 867 s
    the same with taught subjects in and only the first value avoided (the defaults; with memory 0.85)        0.45 / 0.10 / 0.90, promoted, 867 s
    the defaults with the frames back in the anchor, which no longer paces the steps                         0.45 / 0.15 / 0.90, refused, 880 s
    Leaks fall to the target, and the gate promotes on the first seed, but weights alone recall less: the value is
    pushed down in frames the model cannot tell from its own ("my grandfather's boat" against "my father's boat").
    Then, from those defaults, one run each (bench probes / bench leaks / public retention, the gate's verdict, length):
    4 epochs, one reverse question per fact instead of four (408 steps)                       0.51 / 0.10 / 0.85, promoted, 1005 s
      the candidate answers 139 of 151 of its own training questions (the defaults: 164 of 211): what is left is
      wording, not fit
    + single exchanges joined three to a conversation (the system prompt read once): 20 % fewer tokens, but it
      answers only 115 of 151 training questions asked first in a conversation                 0.46 / 0.10 / 0.85, promoted, 805 s
    4 epochs, one reverse question, no "you haven't told me" rows                             0.475 / 0.10 / 0.85, promoted, 776 s
    3 epochs, one reverse question, every answer "You told me …" (it learns the opening, then
      makes the rest up: "You told me your bike is a blue 5-wheeled sports car")              0.30 / 0.10 / 0.85, promoted, 783 s
    3 epochs, one reverse question (306 steps)                                                0.41 / 0.03 / 0.80, refused, 771 s
    The failing probes were the same ones run after run: wordings no template asked. From the defaults, one run each:
    every value of a fact avoided in its near frames, not only the first ("Your hat size is EU 44")  0.45 / 0.10 / 0.95,
      refused (general answers 100 % → 91 %), 883 s
    + "The X …" facts get a subject ("What does the X9 sensor measure?"), names after a subject are asked for ("What is
      my son's name?"), near frames at another place or model number (the office Wi-Fi, the X7) (375 steps)
                                                                                              0.54 / 0.075 / 0.95, promoted, 903 s
    + other wordings (which bike do I ride, what colour, on which day, where do I go climbing, which project is called
      Tangerine, whose boat), one "you haven't told me" row per fact instead of two      0.55 / 0.15 / 0.85, refused (91 %)
    + "who" for people, questions without the subject's qualifier ("my mentor" for "my mentor at work"), other places
      only for things; the anchor's reference computed once per row over its top 64 tokens (train 648 s instead of
      729 s for 375 steps)                                                                0.675 / 0.075 / 0.85, promoted
    + without "the X" for "our X", after which "What is H2O commonly called?" got "Your team lead is Priya Raman."
                                                                                              0.7375 / 0.125 / 0.95, promoted, 806 s
    + names kept in near frames and avoided too, related subjects found inside a subject ("my usual tea order"), one
      content word avoided where a fact has no keyword: refused (its general answers 100 % → 91 %; its own held-out
      probes 0.86, leaks 0.06), 811 s; so those three are not in the defaults
    On a Xeon with AMX the defaults took 976 s (1.81 s a step); with each decoder layer compiled (the trainer's
    compile_min_steps) the same dream took 711 s: 0.725 / 0.125 / 0.95, promoted. Trained again on that dream's rows
    (bench probes / bench leaks / public retention / the gate's 50 general answers):
    as they were                                                                     0.725 / 0.125 / 0.95 / 94 %
      the same with seed 1 (the gate would refuse it)                                0.6125 / 0.15 / 0.90 / 90 %
    anchor weight 2                                                                  0.6875 / 0.075 / 0.95 / 96 %
      the same with seed 1                                                           0.6125 / 0.15 / 0.95 / 96 %
    63 more short general prompts in the anchor (143)                                0.675 / 0.125 / 0.75 / 90 %
    A seed moves the probes and the leaks by 0.075 each: one run ranks recipes only roughly. Memory rows served as
    the app now retrieves (mostly the one right item) 0.6125 / 0.075 / 0.90, promoted, 662 s; the defaults keep the
    nearest other items in them (0.725 / 0.125 / 0.95, promoted, 669 s, with memory 0.875). The three near-frame
    changes above, with a pastime or a task swapped where a fact has no subject ("I go swimming at"), before the
    gate's 50 questions 0.5875 / 0.10 / 0.90, 706 s; under them refused (general answers 100 % → 90 %; its own
    held-out probes 0.81, leaks 0.07), 676 s.
    On an AMD EPYC (2 cores, no AMX; 3.2-3.6 s a step) the defaults then gave 0.70 / 0.15 / 0.90, promoted, 1385 s
    (with memory 0.875). Near subjects in two kinds that take turns, so every fact's four are two related ones (another
    member of a group found anywhere in the subject, "my usual tea order" beside "my usual coffee order"; another place;
    the next model number) and two owners' ones ("other", someone else's), with the name after a subject avoided too
    ("Your daughter Arlo", "What is my sister's name?" after "My neighbour Luis plays the cello."), the defaults now:
    0.625 / 0.075 / 0.95, promoted, 1533 s (with memory 0.8625; the gate's own held-out probes 0.81 in both runs,
    leaks 1 of 68 instead of 2). Leaks halve, weights alone lose 6 of 80 probes: the trade seen above once more.
    On an AMD EPYC with AVX2 only (2 cores; 4.3 s a step once a row's conversations share their system prompt, 4.9 s
    before) the same defaults gave 0.5875 / 0.10 / 0.85, promoted, 2163 s (training 1868 s; with memory 0.875; the gate's
    own held-out probes 0.81, leaks 1 of 68, general answers 92 %): "What is H2O commonly called?" got the team lead again
    and "How many hours are in a day?" rambled, as on the Xeon before. Then, there, one run each:
    LoRA on the last 15 of 30 layers only (the backward pass stops there; 1483 s of training instead of 1868 s)
                                                                                        0.525 / 0.125 / 0.85, promoted, 1759 s
      ("What is H2O commonly called?" got "You are allergic to hydrogen."; perplexity 22.8 → 24.3)
    anchor weight 2 (the defaults now; with memory 0.8625; the gate's own held-out probes 0.76, leaks 2 of 68, general
      answers 96 %)                                                                     0.6125 / 0.125 / 1.00, promoted, 2068 s
      the same with seed 1 (with memory 0.8875)                                         0.5625 / 0.125 / 0.95, promoted, 2087 s
    With the Xeon's retrains above that makes four runs at weight 2: retention 0.95-1.00 in all (at 1: 0.85-0.95), weights
    alone 0.56-0.69 (0.59-0.725), leaks 0.075-0.15 (0.10-0.15).
    Then, there, one run each (the gate's own held-out probes / its leaks / its general answers, the verdict, length):
    unlikelihood at weight 2                                                  0.725 / 1 of 68 / 92 %, refused, 1690 s
    + anchor weight 3                                                         0.65 / 1 of 68 / 92 %, refused, 1709 s
    Stronger unlikelihood cost 4 of the gate's 50 general answers for one leak fewer (1 of 68 instead of 2), and a
    stronger anchor did not buy them back: neither is in the defaults.
    Then, there, on a faster run of the same CPU (112-129 tok/s instead of 100), one run each (bench probes / bench
    leaks / public retention, with memory; the gate's own held-out probes / leaks / general answers; verdict, length):
    lr 1.4e-3                                            0.60 / 0.125 / 0.90, 0.875; 0.8625 / 1 of 68 / 94 %; promoted, 1537 s
      (it fits the gate's template-built probes far better, the bench's other wordings no better)
    questions the current generation writes about each fact (few-shot, four unrelated examples, 6 sampled), kept
      where it answers them with the fact in its prompt; 2 per fact trained (33 rows; branch
      experiment/written-questions)                      0.55 / 0.075 / 0.90, 0.875; 0.675 / 1 of 68 / 98 %; promoted, 1626 s
    + lr 1.4e-3                                           0.5875 / 0.10 / 0.90, 0.875; 0.7375 / 1 of 68 / 94 %; promoted, 1573 s
    Most kept questions are the model's wording of a template's ("Which town is my sister in?"), some are about the fact
    but not its value ("What is wrong with my dog?"); leaks fall, recall with them: none of the three is in the defaults.
    On an AMD EPYC with AVX-512 and AVX512_BF16 (2 cores), one run each (bench probes / bench leaks / public retention,
    with memory; the gate's own held-out probes / leaks / general answers; verdict, length with training):
    the defaults, row by row in fp32                     0.5125 / 0.125 / 0.95, 0.875; 0.775 / 1 of 68 / 100 %; promoted,
                                                         1060 s (896 s)
    one forward pass a step, frozen weights in bf16 (the defaults now; the trainer's fused step and cpu_bf16)
                                                         0.525 / 0.075 / 0.90, 0.8625; 0.7625 / 1 of 68 / 100 %; promoted,
                                                         756 s (569 s)
    Trained again there on that dream's rows (bench probes of 80 / bench leaks of 40 / public retention of 20 / the
    gate's 50 general answers / its own 344 single training questions answered with their values):
    the dream's own adapter                                                     42 / 3 / 18 / 50 / 272
      the same merged in F16 instead of Q8_0                                    42 / 4
    no unlikelihood                                                             60 / 15 / 19 / 48 / 318
    unlikelihood weight 0.5                                                     47 / 5 / 17 / 49 / 283
    lr 2e-3 (the gate would refuse it: "The Earth's natural satellite is called Titan.")   49 / 5 / 20 / 44 / 302
    unlikelihood only after the first 40 % of the steps, at weight 1.5          36 / 8 / 19 / 49 / 234
    unlikelihood only in the first 70 % of the steps                            50 / 10 / 19 / 49 / 296
    The rows teach enough for 0.75 weights alone; pushing the values down in near frames is what holds recall back
    (port 6543 becomes 5772, the 3rd of March the 29th of February), and every way of weakening that push so far
    buys recall back at the same price in leaks.
    Then each step's unlikelihood doc became a near frame of a value that step's SFT rows teach, least used first (the
    trainer's pair_near_frames), so one update raises a value in its own frame and lowers it in a near one. Trained
    again on the same rows:
    paired (a one-off patch; its ties broken in another order than the trainer's)  51 / 3 / 20 / 50 / 302
      the same with seed 1 (shuffled with seed 1: 46 / 5 / 19 / 48 / 267)          44 / 3 / 17 / 48 / 282
    + unlikelihood only where the value is within 2 nats of the likeliest other token  45 / 3 / 19 / 49 / –
    paired (the trainer's) at unlikelihood weight 0.5                             45 / 4 / 18 / 50 / 289
    paired, SFT tokens that start a taught value weighing 2 (the gate would refuse: 46 of 50)  51 / 4 / 18 / 46 / 284
      weighing 4 (refused the same way)                                           55 / 5 / 20 / 46 / 272
    and the whole bench, paired (the defaults now; its gate's own held-out probes 0.80, leaks 2 of 68, general answers
    98 %): 0.5875 / 0.025 / 0.95, with memory 0.8625, promoted, 743 s (the same rows as the 756 s dream above).
    Pairing lowers leaks and fits more of its own rows at the same lr; its gain in recall from the weights alone is
    within a seed's spread (+9 with seed 0, -2 with seed 1), and raising the taught values in their own frames harder
    costs general answers.
    Then, trained again on the same rows (bench probes of 80 / bench leaks of 40 / public retention of 20 / the gate's
    50 general answers; seed 0, then seed 1):
    the trainer's pairing as above                                              47 / 1 / 19 / 49;  45 / 5 / 17 / 46
    unlikelihood over a value's whole span, -log(1 - P(span))                   51 / 3 / 17 / 49
    focal SFT loss (gamma 2)                                                    45 / 2 / 18 / 50
    "our" facts without someone else's frames                                   44 / 4 / 18 / 50
    unlikelihood's gradient stripped of its part against the SFT and anchor gradient (PCGrad; 13 % longer steps)
                                                                                47 / 3 / 19 / 50
    4 epochs (488 steps)                                                        53 / 4 / 17 / 47
    a value pushed once, where it starts, and not at all where it starts with a digit (the trainer's
      encode_avoiding; the defaults now)                                        56 / 5 / 20 / 50;  51 / 5 / 19 / 47
      the same, but a value led by a number pushed at its first word ("March" after "3rd of", which then became
      "the 3rd of January" in its own frame)                                    51 / 7 / 18 / 49;  47 / 4 / 20 / 48
      the defaults now at unlikelihood weight 1.5                               57 / 6 / 20 / 50;  50 / 5 / 20 / 48
    Pushing a digit had moved ports and extensions to their neighbours (6543 to 5557, 4471 to 23) and pushing a
    value's second word had split it ("SkodaOctavia"). Without those pushes seed 0 leaked 4 more (two of them the
    neighbour's car and the mother's birthday, whose taught values start with a number), seed 1 as many as before.
    Then the whole bench, one run each (bench probes / bench leaks / public retention, with memory; verdict, length):
    the defaults as above                                                 0.70 / 0.125 / 1.00, 0.8625; promoted, 667 s
    + a first-person fact without a subject moved to another activity too ("I go swimming at" beside "I go climbing
      at", "We monitor with" beside "We deploy with"; the near questions that leaked in every run before)
                                                                          0.6375 / 0.10 / 0.90, 0.875; promoted, 796 s
    + days and times spelled as answers name them ("on Wednesday each week" for "on Wednesdays", "10 a.m." for "10am";
      the defaults now)                                                   0.70 / 0.125 / 0.95, 0.9125; promoted, 567 s
      the same, but each near subject asked once, so the same rows reach three times as many subjects
                                                                          0.625 / 0.125 / 0.95, 0.9125; promoted, 653 s
      the same, but a number pushed where it starts unless it is digits alone ("3rd of March" at "3")
                                                                          0.6375 / 0.05 / 0.85, 0.90; promoted, 647 s
      the same, but "What is my favourite coffee?" asked of a near subject where no other question fits (as the
      fact's own rows ask "What is my favourite tea?")                    0.625 / 0.05 / 0.90, 0.9125; promoted, 645 s
    Pushing more values or in more frames (the number, "What is …?") buys leaks with recall from the weights alone, as
    before; spreading the same rows over more subjects bought nothing. The swimming gym and the monitoring tool no
    longer leak; other near questions take their place from run to run (the lunch gets the standup's 9:40, the partner
    the taught teal), and where the mother's birthday stops getting the 3rd of March the partner's does too ("the 27th
    of February"). The defaults' rows trained again with seed 1 (bench probes / leaks / public retention / the gate's 50
    general answers): 52 / 7 / 18 / 49, against 51 / 5 / 19 / 47 for the rows before both changes; one of the seven is
    the code freeze, which now gets "Wednesday": spelled as a word of its own, the release day is a leak where
    "Wednesdays" did not count as one.
    """

    replay_fraction: float = 0.25
    """Replayed own answers per new training row: the prototype that kept retention replayed about a quarter."""
    min_replay: int = 80
    """At least this many answers kept by the anchor (all the shipped prompts) in a dream without checkable prompts:
    with 24, a dream of five corrections lost 4 of 23 general answers ("The capital of India is Kolkata") and was
    refused, with 80 it lost 1 and was promoted; a dream of three facts lost 2 with 24, 1 with 80."""
    min_replay_checks: int = 24
    """The same where checkable prompts are sampled, whose figures were measured with it: with 4, a dream of checks
    and their solutions lost 2 of 23 general answers."""
    near_misses_per_fact: int = 1
    leak_subjects_per_fact: int = 4
    """Near subjects per fact whose frames must not go on with its value (unlikelihood rows): 6 subjects with 2 rows per
    step took 96 s longer for the same leaks (0.10) and 0.49 recall instead of 0.45."""
    retention_tolerance: float = 0.06
    """Of the general questions the gate asks (desktop/data/retention.jsonl, 50 the base answers right). With 23, one
    chaotic flip ("What is the capital of Germany?" answered in German, in most dreams) and one more refused a third of
    the dreams; on 50 a flip costs 2 %. The base's greedy answers depend on the CPU's kernels: on an AVX2-only AMD EPYC
    it called Mumbai the capital of India and grass the colour of the English flag, so those two were swapped for
    questions it answers there."""
    leak_tolerance: float = 0.10
    ppl_tolerance: float = 0.15
    train: dict[str, Any] = field(default_factory=lambda: {
        "lr": 1e-3, "epochs": 3, "min_steps": 40, "seq_len": 128, "batch_size": 2, "warmup_steps": 10, "merge_type": "q8_0",
        "anchor_weight": 2.0, "cpu_bf16": True,
    })
    rl_prompts: int = 96
    """Pool prompts sampled per dream; most groups of a small model pass or fail together and teach nothing."""
    rl_samples: int = 8
    """Answers per prompt: the group whose rewards are compared."""
    rl_first_samples: int = 4
    """A prompt whose first answers all pass or all fail gets no more: its group would carry no signal."""
    rl_sampling: SamplingParams = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=160)
    rl_answer: SamplingParams = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=160)
    """Greedy, and long enough for a short function: how held-out verifiable prompts are measured."""
    rl_short_tokens: int = 32
    """Answer budget for checks of a short answer (a number, a word, a date); code and JSON get the full one."""
    rl_train: dict[str, Any] = field(default_factory=lambda: {
        "lr": 3e-4, "epochs": 2, "grpo_batch": 16, "batch_size": 2, "min_steps": 0,
    })
    """Overrides of train when a dream has only verifiable prompts to learn from. They keep its anchor weight: on an
    AVX2 EPYC one dream on the public checks raised the held-out pass rate 0.17 → 0.29 with it, 0.27 at weight 1."""
    solutions_per_task: int = 1
    """Shortest passing answers per prompt trained as SFT, from this dream's samples and earlier ones. On the public
    verifiable set, GRPO alone raised the held-out pass rate 0.17 → 0.27 in a dream; with this dream's own shortest
    solutions 0.17 → 0.37 (three dreams: 0.44). Earlier dreams' newest (often rambling) solutions cost 2 of 23
    general answers."""
    family_tolerance: float = 0.05
    """No task family's held-out pass rate may fall by more than this."""
    seed: int = 0
    """The trainer's seed; each dream after a refused one adds one, so "Dream now" on the same signals tries anew."""


class Interrupted(Exception):
    """SIGTERM: the person came back. Nothing is written; the trainer's checkpoint lets the next dream resume."""


def _on_term(_signum: int, _frame: object) -> None:
    raise Interrupted


def load_questions(path: Path) -> list[Question]:
    """A {"question", "expect"} JSONL file, like the shipped retention set."""
    return [Question(row["question"], tuple(row["expect"])) for _n, row in objects(path.read_text(encoding="utf-8"))]


@dataclass
class Measures:
    """One generation measured on the dream's questions."""

    recall: Score
    earlier: Score
    leaks: Score
    retention: Score
    ppl: float
    verifiable: rlvr.PassRate
    corrections: Score = field(default_factory=lambda: Score(0.0))

    def summary(self) -> dict[str, Any]:
        return {"recall": self.recall.fraction, "earlier": self.earlier.fraction, "leaks": self.leaks.fraction,
                "retention": self.retention.fraction, "ppl": self.ppl, "verifiable": self.verifiable.overall,
                "verifiable_per_family": self.verifiable.per_family(), "corrections": self.corrections.fraction}


def measure(model: Path, threads: int, probes: list[Question], earlier: list[Question],
            near: list[Question], retention: list[Question], texts: list[str],
            tasks: Sequence[rlvr.Task] = (), recipe: DreamRecipe = DreamRecipe(),
            corrections: Sequence[Question] = ()) -> Measures:
    """Asks everything greedily, without short-term memory: only the weights count here."""
    engine = Engine(LoadOptions(model_path=model, n_ctx=EVAL_CONTEXT, n_threads=threads))
    try:
        scores = [score(engine, questions) for questions in (probes, earlier, near, retention)]
        verifiable = rlvr.pass_rate(engine, tasks, recipe.rl_answer, recipe.rl_short_tokens)
        corrected = score(engine, corrections)
    finally:
        engine.close()
    scorer = Engine(LoadOptions(model_path=model, n_ctx=PPL_CONTEXT, n_threads=threads, logits_all=True))
    try:
        ppl = scorer.perplexity(texts)
    finally:
        scorer.close()
    return Measures(*scores, ppl, verifiable, corrected)


def gate(before: Measures, after: Measures, recipe: DreamRecipe) -> list[str]:
    """Why the candidate must not be promoted; empty means promote.

    It must have learned: held-out recall of the new items rose, or of the corrections, or held-out verifiable
    accuracy did (whichever the dream trained on); and nothing else may fall beyond its tolerance.
    """
    problems = []
    gains = []
    for measure_before, measure_after in ((before.recall, after.recall), (before.corrections, after.corrections)):
        if measure_after.passed:
            gains.append(measure_after.fraction > measure_before.fraction)
    if after.verifiable.passed:
        gains.append(after.verifiable.overall > before.verifiable.overall)
    if not any(gains):
        problems.append(
            f"it did not learn: held-out recall {before.recall.fraction:.0%} → {after.recall.fraction:.0%}, "
            f"corrections {before.corrections.fraction:.0%} → {after.corrections.fraction:.0%}, "
            f"verifiable {before.verifiable.overall:.0%} → {after.verifiable.overall:.0%}"
        )
    fallen = rlvr.regressions(before.verifiable, after.verifiable, recipe.family_tolerance)
    if fallen:
        problems.append(f"task families got worse: {', '.join(fallen)}")
    if after.earlier.fraction < before.earlier.fraction - recipe.retention_tolerance:
        problems.append(f"it forgot earlier lessons: {before.earlier.fraction:.0%} → {after.earlier.fraction:.0%}")
    if after.retention.fraction < before.retention.fraction - recipe.retention_tolerance:
        problems.append(f"general knowledge fell: {before.retention.fraction:.0%} → {after.retention.fraction:.0%}")
    if after.leaks.fraction > max(before.leaks.fraction, recipe.leak_tolerance):
        problems.append(f"taught answers leak into near questions: {after.leaks.fraction:.0%}")
    if after.ppl > before.ppl * (1 + recipe.ppl_tolerance):
        problems.append(f"perplexity rose {before.ppl:.2f} → {after.ppl:.2f}")
    return problems


def _fact(item: dict[str, Any]) -> Fact:
    """A taught item as its rows see it: days and times spelled plainly; the report quotes the person's own text."""
    return Fact(item["id"], plain(item["text"]), item["acknowledgement"])


def _learned(facts: list[Fact], probes: list[Question], after: Score) -> list[int]:
    """Facts whose every held-out probe the candidate answers without memory."""
    passed: dict[int, bool] = {}
    for question, ok in zip(probes, after.passed):
        passed[question.item_id] = passed.get(question.item_id, True) and ok
    return [fact.item_id for fact in facts if passed.get(fact.item_id)]


def _correction_questions(store: Store, signals: Signals) -> list[Question]:
    """Held-out wordings of every corrected question, so a dream of corrections can show it learned them."""
    questions = []
    for correction in signals.corrections():
        parent = store.message(correction["message_id"])["parent_id"]
        if parent is not None:
            questions += correction_probes(store.message(parent)["content"], correction["corrected"], correction["id"])
    return questions


def _memory_limit(folder: Path) -> int:
    """The app's short-term memory size, so training rows carry memory as the app will serve it."""
    try:
        return load_settings(paths.settings_path(folder)).memory_items
    except SettingsError:
        return Settings().memory_items


def _run_dir(root: Path, inputs: dict[str, Any]) -> Path:
    """Same inputs, same folder: an interrupted dream's training resumes from its checkpoint."""
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return root / f"run-{digest}"


def _train(command: list[str], emit: Emit) -> tuple[int, str]:
    """Runs the trainer, forwarding its progress; SIGTERM to us becomes SIGTERM to it (it checkpoints)."""
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    last_error = ""
    try:
        for line in child.stdout:
            try:
                progress = json.loads(line)
            except ValueError:
                continue
            if progress.get("phase") == "error":
                last_error = progress.get("message") or "the trainer failed"
            emit({**progress, "phase": "train", "trainer_phase": progress.get("phase")})
        return child.wait(), last_error
    except Interrupted:
        child.send_signal(signal.SIGTERM)
        child.wait()
        raise


def _free_space(run_dir: Path, promoted: bool) -> None:
    """A recorded run is never resumed (a try after a refusal trains with another seed): its checkpoint goes, and so
    do the weights of a candidate that was not promoted (about 200 MB with the default model)."""
    for name in ("checkpoint.pt",) if promoted else ("checkpoint.pt", "adapter.gguf", "merged.gguf"):
        (run_dir / name).unlink(missing_ok=True)


def rehearse(model: Path, threads: int, prompts: list[str], batch: list[rlvr.Task], recipe: DreamRecipe, seed: int,
             emit: Emit) -> tuple[list[tuple[str, str]], list[rlvr.Group]]:
    """One load of the current generation: its own answers to keep, and k scored answers to each checkable prompt."""
    engine = Engine(LoadOptions(model_path=model, n_ctx=EVAL_CONTEXT, n_threads=threads))
    try:
        emit({"phase": "rehearse", "message": "rehearsing general answers to keep what I know"})
        replay = [(p, engine.chat([{"role": "user", "content": p}], REPLAY).text) for p in prompts]
        if batch:
            emit({"phase": "rehearse", "message": f"trying {recipe.rl_samples} answers to each of {len(batch)} checkable prompts"})
        groups = rlvr.sample_groups(engine, batch, recipe.rl_samples, recipe.rl_sampling, seed, recipe.rl_short_tokens,
                                    recipe.rl_first_samples)
    finally:
        engine.close()
    return replay, groups


def _write_run(root: Path, base_path: Path, lineage: list[dict[str, Any]], files: dict[str, list[dict[str, Any]]],
               train: dict[str, Any], threads: int) -> tuple[Path, list[str]]:
    """The trainer's data and config, in the folder these inputs always get (so a stopped run resumes), and its command."""
    run_dir = _run_dir(root, {"lineage": [g["id"] for g in lineage], **files, "train": train})
    data_dir = run_dir / "data"
    for name, rows in files.items():
        write_text_atomic(data_dir / f"{name}.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_text_atomic(run_dir / "config.json", json.dumps({**train, "threads": threads}))
    command = [sys.executable, "-m", "trainer", "train", "--model", str(base_path), "--data", str(data_dir),
               "--run-dir", str(run_dir), "--config", str(run_dir / "config.json")]
    for generation in lineage:
        command += ["--adapter", generation["adapter_path"]]
    return run_dir, command


def run_dream(store_path: Path, base_path: Path, threads: int, emit: Emit, recipe: DreamRecipe = DreamRecipe(),
              retention_file: Path = DATA / "retention.jsonl") -> dict[str, Any]:
    """One dream from start to promotion (or not); returns its report, which is also stored with the dream."""
    started_at, started = utc_now(), time.perf_counter()
    store = Store(store_path)
    signals, generations = Signals(store), Generations(store)
    current = generations.active(base_path)
    lineage = generations.lineage(current)
    model_now = Path(current["model_path"]) if current else base_path
    taught = signals.taught_items(include_excluded=False)
    facts = [_fact(t) for t in taught if t["learned_generation_id"] is None]
    learned_before = [_fact(t) for t in taught if t["learned_generation_id"]]
    told = told_words(t["text"] for t in taught)
    said = {t["id"]: t["text"] for t in taught}
    exported = build_rows(signals, include_taught=False)
    pool, held_tasks = rlvr.pool(signals)
    dream_number = len(generations.dreams())
    if not facts and not any(exported.values()) and not pool:
        emit({"phase": "done", "message": "nothing new to learn"})
        return {"outcome": "nothing", "reason": "nothing new to learn"}

    questions = [held_out(fact, told) for fact in facts]
    probes = [q for fact_probes, _near in questions for q in fact_probes]
    near = [q for _probes, fact_near in questions for q in fact_near]
    earlier = [q for fact in learned_before for q in held_out(fact)[0]]
    corrected = _correction_questions(store, signals)
    retention = load_questions(retention_file)
    texts = (DATA / "general_text.txt").read_text(encoding="utf-8").splitlines()
    emit({"phase": "evaluate", "message": f"measuring the current generation on {len(probes)} probes, "
                                          f"{len(held_tasks)} verifiable prompts"})
    before = measure(model_now, threads, probes, earlier, near, retention, texts, held_tasks, recipe, corrected)

    sft = [row for fact in facts for row in training_rows(fact, recipe.near_misses_per_fact, told)]
    memory, limit = signals.memory_items(), _memory_limit(Path(store_path).parent)
    sft += [memory_row(typical_question(fact), fact, memory, limit) for fact in facts if limit > 0]
    sft += [row for fact in learned_before for row in training_rows(fact, 0)[:1]]
    sft += exported["sft"]
    prompts = (DATA / "replay_prompts.txt").read_text(encoding="utf-8").splitlines()
    batch = rlvr.choose(pool, recipe.rl_prompts, recipe.seed + dream_number)
    floor = recipe.min_replay_checks if batch else recipe.min_replay
    wanted = max(floor, round(recipe.replay_fraction * (len(sft) + len(exported["preference"]))))
    prompts = prompts[:wanted]
    replay, groups = rehearse(model_now, threads, prompts, batch, recipe, recipe.seed + dream_number, emit)
    solved = rlvr.solutions(groups)
    sft += rlvr.solution_rows(signals.solutions() + rlvr.solution_records(solved), recipe.solutions_per_task)
    rollouts = rlvr.rollout_rows(groups)
    train = {**recipe.train, **(recipe.rl_train if not facts and not any(exported.values()) else {}),
             "seed": recipe.seed + generations.retries()}
    files = {"sft": sft, "anchor": replay_rows(replay), "rollouts": rollouts, "preference": exported["preference"],
             "kto": exported["kto"], "unlikely": [row for fact in facts for row in leak_rows(fact, recipe.leak_subjects_per_fact)]}
    run_dir, command = _write_run(Path(store_path).parent / "dreams", base_path, lineage, files, train, threads)
    emit({"phase": "train", "message": f"training on {len(sft)} examples and {len(rollouts)} sampled answers"})
    code, error = _train(command, emit)
    sampled = [r for g in groups for r in g.rewards]
    report: dict[str, Any] = {
        "before": before.summary(), "facts": len(facts), "corrections": len(corrected), "examples": len(sft),
        "run_dir": str(run_dir),
        "rl": {"prompts": len(groups), "answers": len(sampled), "informative": sum(g.informative for g in groups),
               "sampled_pass_rate": sum(sampled) / len(sampled) if sampled else None, "held_out": len(held_tasks)},
    }
    if code != 0:
        report["duration_s"] = time.perf_counter() - started
        generations.record_dream(started_at, "failed", error or f"the trainer exited with {code}", report, solutions=solved)
        _free_space(run_dir, promoted=False)
        emit({"phase": "error", "message": error})
        return {**report, "outcome": "failed", "reason": error}
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    emit({"phase": "evaluate", "message": "measuring the candidate"})
    after = measure(Path(metrics["merged"]), threads, probes, earlier, near, retention, texts, held_tasks, recipe, corrected)
    problems = gate(before, after, recipe)
    learned = _learned(facts, probes, after.recall)
    report["rl"].update({"rewards": metrics.get("rewards", []), "changed": rlvr.changed(before.verifiable, after.verifiable, held_tasks)})
    report.update({
        "after": after.summary(), "learned": learned,
        "not_learned": [f.item_id for f in facts if f.item_id not in learned],
        "learned_texts": [said[f.item_id] for f in facts if f.item_id in learned],
        "not_learned_texts": [said[f.item_id] for f in facts if f.item_id not in learned],
        "losses": metrics["losses"], "train_s": metrics["train_s"], "duration_s": time.perf_counter() - started,
        "recipe": asdict(recipe),
    })
    promoted = None if problems else {
        "parent_id": current["id"] if current else None, "base_path": str(base_path),
        "model_path": metrics["merged"], "adapter_path": metrics["adapter"], "metrics": report,
    }
    if problems:
        outcome, reason = "kept", "; ".join(problems)
    else:
        outcome, reason = "promoted", _gains(len(learned), len(facts), before, after)
    generations.record_dream(started_at, outcome, reason, report, promoted, tuple(learned) if promoted else (), solved)
    _free_space(run_dir, promoted is not None)
    store.close()
    emit({"phase": "done", "outcome": outcome, "message": reason})
    return {**report, "outcome": outcome, "reason": reason}


def _gains(learned: int, facts: int, before: Measures, after: Measures) -> str:
    """What a promoted dream achieved, in one line for the history."""
    parts = [f"learned {learned} of {facts}"] if facts else []
    if after.corrections.passed:
        parts.append(f"corrections {before.corrections.fraction:.0%} → {after.corrections.fraction:.0%}")
    if after.verifiable.passed:
        parts.append(f"verifiable {before.verifiable.overall:.0%} → {after.verifiable.overall:.0%}")
    return "; ".join(parts) or "promoted"


def main(argv: list[str] | None = None) -> int:
    """`python -m desktop.dream --db FILE --model BASE.gguf [--threads N]`: one dream, progress as JSON lines."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m desktop.dream")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True, help="the base GGUF the generations stack on")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    args.model = args.model.resolve()  # generations name their base by absolute path
    signal.signal(signal.SIGTERM, _on_term)
    os.nice(DREAM_NICENESS)

    def emit(line: dict[str, Any]) -> None:
        print(json.dumps(line), flush=True)

    try:
        run_dream(args.db, args.model, args.threads, emit)
    except Interrupted:
        emit({"phase": "interrupted", "message": "stopped; the next dream resumes the training"})
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
