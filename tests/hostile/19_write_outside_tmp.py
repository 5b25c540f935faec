"""Drops a file in the shared /tmp (outside its private temp dir)."""
# expect: forbidden exception


def evaluate(response):
    with open("/tmp/autoif_hostile_pwned_file", "w") as fh:
        fh.write("pwned")
    return True
