"""Opens files until descriptors run out."""
# expect: exception


def evaluate(response):
    handles = [open(f"f{i}.txt", "w") for i in range(100_000)]
    return len(handles) > 0
