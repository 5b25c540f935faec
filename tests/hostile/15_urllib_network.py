"""Downloads something with urllib."""
# expect: forbidden_import
import urllib.request


def evaluate(response):
    return urllib.request.urlopen("http://example.com", timeout=2).status == 200
