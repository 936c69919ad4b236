"""The trainer: a separate process (torch + peft, never Qt) that turns the app's signals into LoRA weights.

`python -m trainer train` reads exported SFT/preference/KTO data, trains on the GGUF the app runs, and writes
a llama.cpp LoRA adapter and a merged F16/Q8_0 model; the desktop app only starts it and reads its stdout.
"""
