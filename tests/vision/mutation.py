"""Random edits of valid files, for tests that readers load them or raise errors naming the file."""

import random


def mutated(data: bytes, seed: int) -> bytes:
    """``data`` with one random edit: a byte set or bit flipped, bytes cut, deleted or inserted, or a
    space-separated token replaced by an awkward value (NaN, huge, negative, not a number)."""
    r = random.Random(seed)
    data = bytearray(data)
    kind = r.randrange(6)
    at = r.randrange(len(data))
    if kind == 0:
        data[at] = r.randrange(256)
    elif kind == 1:
        data[at] ^= 1 << r.randrange(8)
    elif kind == 2:
        del data[at:]
    elif kind == 3:
        del data[at : at + r.randrange(1, 9)]
    elif kind == 4:
        data[at:at] = bytes(r.randrange(256) for _ in range(r.randrange(1, 9)))
    else:
        tokens = bytes(data).split(b" ")
        tokens[r.randrange(len(tokens))] = r.choice([b"nan", b"-1", b"1e400", b"x", b"", b"300", b"99999999999999999999", b"0", b"inf", b"1.5"])
        data = bytearray(b" ".join(tokens))
    return bytes(data)


def refusals(path, read, error: type, seeds: int) -> int:
    """Write ``seeds`` random edits of ``path``'s content to it in turn and call ``read()`` after
    each; every ``error`` raised must name the file (any other exception fails the test). Returns how
    many edits were refused; the file is left as it was."""
    original = path.read_bytes()
    refused = 0
    for seed in range(seeds):
        path.write_bytes(mutated(original, seed))
        try:
            read()
        except error as err:
            assert str(path) in str(err), err
            refused += 1
    path.write_bytes(original)
    return refused
