"""collections keeps `sys` as `_sys`: fetched with getattr and a built name."""
# expect: forbidden


def evaluate(response):
    import collections
    sys = getattr(collections, "_s" + "ys")
    return sys.modules["o" + "s"].system("id") == 0
