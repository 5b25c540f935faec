"""Waits for keyboard input (stdin is /dev/null: EOF at once)."""
# expect: exception


def evaluate(response):
    return input("answer? ") == "yes"
