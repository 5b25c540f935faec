"""Control case: writing and reading back inside the private temp dir (the cwd) is allowed."""
# expect: pass


def evaluate(response):
    with open("scratch.txt", "w") as fh:
        fh.write(response)
    with open("scratch.txt") as fh:
        return fh.read() == response
