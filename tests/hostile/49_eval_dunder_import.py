"""Hides __import__ inside eval'd text."""
# expect: forbidden


def evaluate(response):
    return eval("__imp" + "ort__('o' + 's').getpid()") > 0
