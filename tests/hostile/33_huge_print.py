"""Prints ~50 MB to stdout (which the sandbox sends to /dev/null)."""
# expect: pass


def evaluate(response):
    line = "x" * 1_000_000
    for _ in range(50):
        print(line)
    return True
