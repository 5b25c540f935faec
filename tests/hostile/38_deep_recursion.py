"""Unbounded recursion."""
# expect: exception


def evaluate(response):
    def dive(n):
        return dive(n + 1) + 1
    return dive(0) > 0
