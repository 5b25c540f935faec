"""Exits the interpreter the polite way."""
# expect: exception


def evaluate(response):
    raise SystemExit(3)
