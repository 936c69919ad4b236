"""The trainer: a separate process (torch + peft, never Qt) that turns the app's signals into LoRA weights.

It is filled by the trainer issue; the desktop app never imports it.
"""
