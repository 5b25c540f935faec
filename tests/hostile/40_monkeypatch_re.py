"""Poisons the shared `re` module at import time, hoping later functions see it."""
# expect: pass
import re

re.POISONED = True
re.search = lambda *args, **kwargs: None
re.compile = None
re.fullmatch = lambda *args, **kwargs: None


def evaluate(response):
    return True
