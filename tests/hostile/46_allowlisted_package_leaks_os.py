"""Reaches os through an allowlisted package's attribute (nltk imports os)."""
# expect: forbidden
import nltk


def evaluate(response):
    return nltk.os.system("id") == 0
