"""The classic object.__subclasses__() walk to find something dangerous."""
# expect: forbidden


def evaluate(response):
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "Popen":
            cls(["id"])
    return True
