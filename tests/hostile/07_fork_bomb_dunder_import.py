"""Fork bomb through __import__ (refused by name)."""
# expect: forbidden


def evaluate(response):
    while True:
        __import__("o" + "s").fork()
