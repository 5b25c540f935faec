"""Never finishes defining itself: the loop runs at import time."""
# expect: timeout

while True:
    pass


def evaluate(response):
    return True
