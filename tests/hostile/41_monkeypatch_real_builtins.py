"""Rewrites the real builtins (len, str, isinstance) through the escape, hoping to poison later functions.

That also breaks its own child's reporting, which the fork server notices (killed, protocol violation);
what matters is that functions run after it are unaffected.
"""
# expect: pass killed
import string


def real_builtins():
    field = "0." + "__glo" + "bals__"
    module_globals = string.Formatter().get_field(field, [string.capwords], {})[0]
    return module_globals["__buil" + "tins__"]


b = real_builtins()
b["len"] = lambda obj: 0
b["str"] = lambda *a: "poisoned"
b["isinstance"] = lambda *a: False


def evaluate(response):
    return True
