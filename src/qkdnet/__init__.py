"""qkdnet: a carrier-grade quantum key distribution network in Python.

The layers follow ITU-T Y.3802: quantum (:mod:`qkdnet.quantum`), key management, QKDN
control, QKDN management and application. See the README and DESIGN.md.
"""

__version__ = "0.1.0"
