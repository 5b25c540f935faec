"""Catastrophic regex backtracking: stuck in C code that holds the GIL (no Python-level timer can fire)."""
# expect: timeout
import re


def evaluate(response):
    return re.match(r"(a+)+$", "a" * 64 + "!") is not None
