"""gen-4 (Part 17): sending values into a generator, and throwing an exception in.

A yield is an expression: send() makes it evaluate to a value, throw() makes
it raise. That is what lets inlineCallbacks hand a generator the result, or the
failure, of each Deferred it yields.
"""


class Malfunction(Exception):
    pass


def my_generator():
    print("starting up")

    val = yield 1
    print("got:", val)

    val = yield 2
    print("got:", val)

    try:
        yield 3
    except Malfunction:
        print("malfunction!")

    yield 4

    print("done")


gen = my_generator()

print(next(gen))  # start the generator
print(gen.send(10))  # send the value 10
print(gen.send(20))  # send the value 20
print(gen.throw(Malfunction()))  # raise an exception inside the generator

try:
    next(gen)
except StopIteration:
    pass
