"""nltk.download needs the network and writes outside the temp dir (AutoIF's scripts call it)."""
# expect: forbidden forbidden_import exception fail
import nltk


def evaluate(response):
    return bool(nltk.download("punkt", quiet=True, raise_on_error=True))
