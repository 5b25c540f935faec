"""Overwrites a file outside the sandbox with the plain open() builtin."""
# expect: forbidden exception


def evaluate(response):
    with open(response, "w") as fh:
        fh.write("pwned")
    return True
