"""importlib.import_module to reach os."""
# expect: forbidden_import
import importlib


def evaluate(response):
    return importlib.import_module("os").system("id") == 0
