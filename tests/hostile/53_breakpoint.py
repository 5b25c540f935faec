"""Drops into the debugger (would block on stdin)."""
# expect: forbidden


def evaluate(response):
    breakpoint()
    return True
