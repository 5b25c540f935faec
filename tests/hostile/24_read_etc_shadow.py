"""Reads a system secret."""
# expect: forbidden exception


def evaluate(response):
    with open("/etc/shadow") as fh:
        raise ValueError(fh.read())
