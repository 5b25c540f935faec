"""One 10 GB allocation."""
# expect: memory


def evaluate(response):
    blob = "a" * (10 ** 10)
    return len(blob) > 0
