"""Fills the disk from its private temp dir (the file size limit stops it)."""
# expect: exception


def evaluate(response):
    chunk = b"z" * 2 ** 20
    with open("big.bin", "wb") as fh:
        for _ in range(1000):
            fh.write(chunk)
    return True
