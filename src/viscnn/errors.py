"""One exception type for every fault the user can fix.

The CLI prints its message as one line and exits non-zero; the server turns it into a 4xx.
"""


class ViscnnError(Exception):
    """A fault in the user's input (model, weights, images, query), with a message naming it."""
