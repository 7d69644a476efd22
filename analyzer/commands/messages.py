def add_parser(sub):
    sub.add_parser("messages")
def run(args):
    return 2
