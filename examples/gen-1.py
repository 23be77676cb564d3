"""gen-1 (Part 17): a generator's prints interleave with the loop that drives it.

The for loop is a tiny "reactor": each turn it restarts the generator, which
runs until its next yield and hands back a value.
"""


def my_generator():
    print("starting up")
    yield 1
    print("workin'")
    yield 2
    print("still workin'")
    yield 3
    print("done")


for n in my_generator():
    print(n)
