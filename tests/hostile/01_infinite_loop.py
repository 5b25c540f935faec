"""Spins forever inside evaluate."""
# expect: timeout


def evaluate(response):
    while True:
        pass
