"""Reads another process's environment (input 1 is /proc/<host pid>/environ) and a file outside (input 0)."""
# expect: forbidden exception


def evaluate(response):
    with open(response, "rb") as fh:
        raise ValueError(fh.read().decode(errors="replace"))
