"""ctypes gives raw memory and syscalls."""
# expect: forbidden_import
import ctypes


def evaluate(response):
    return ctypes.CDLL(None).fork() > 0
