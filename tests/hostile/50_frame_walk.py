"""Walks generator/traceback frames up to the sandbox's own globals."""
# expect: forbidden


def evaluate(response):
    gen = (x for x in [1])
    frame = gen.gi_frame
    return frame.f_back.f_globals is not None
