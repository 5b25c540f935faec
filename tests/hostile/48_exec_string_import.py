"""Hides the import inside exec'd text."""
# expect: forbidden_import


def evaluate(response):
    namespace = {}
    exec("import o" + "s\nresult = os.system('id')", namespace)
    return namespace["result"] == 0
