"""Swallows every exception (KeyboardInterrupt, SystemExit, timeouts raised in Python) and keeps looping."""
# expect: timeout


def evaluate(response):
    while True:
        try:
            while True:
                pass
        except BaseException:
            continue
