"""Grows a list of 10 MB chunks until something gives."""
# expect: memory


def evaluate(response):
    hoard = []
    while True:
        hoard.append(bytearray(10 * 2 ** 20))
