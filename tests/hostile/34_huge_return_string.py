"""Returns a 50 MB string: a non-bool verdict whose detail must stay short."""
# expect: non_bool


def evaluate(response):
    return "True" * 12_500_000
