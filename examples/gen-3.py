"""gen-3 (Part 17): two generators active at once, their steps interleaved.

Like independent asynchronous tasks in one thread: each keeps its own state
between steps, and a loop takes turns restarting them.
"""


def my_generator(name):
    print(f"{name}: starting up")
    yield 1
    print(f"{name}: workin'")
    yield 2
    print(f"{name}: still workin'")
    yield 3
    print(f"{name}: done")


generators = [my_generator("a"), my_generator("b")]

while generators:
    for gen in list(generators):
        try:
            n = next(gen)
        except StopIteration:
            generators.remove(gen)
        else:
            print(n)
