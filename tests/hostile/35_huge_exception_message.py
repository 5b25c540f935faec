"""Raises with a 10 MB message: the detail must be clipped."""
# expect: exception


def evaluate(response):
    raise ValueError("y" * 10_000_000)
