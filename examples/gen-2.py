"""gen-2 (Part 17): gen-1 with the loop written out, calling next() by hand.

The generator only runs when the loop asks it to, and the loop waits while it
runs: the same hand-over as between a reactor and its callbacks.
"""


def my_generator():
    print("starting up")
    yield 1
    print("workin'")
    yield 2
    print("still workin'")
    yield 3
    print("done")


gen = my_generator()

while True:
    try:
        n = next(gen)  # Python 3 spells the article's gen.next() as next(gen)
    except StopIteration:
        break
    else:
        print(n)
