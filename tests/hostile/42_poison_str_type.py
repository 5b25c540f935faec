"""Tries to patch a method of the built-in str type."""
# expect: exception


def evaluate(response):
    str.lower = lambda self: "poisoned"
    return True
