"""The bottom layer: imports nothing of the package above it.

``registry`` (the one extension mechanism), ``io`` (atomic writes, weights-only loading), ``errors`` (the
expected failures every layer raises and the stages map to one line), ``runtime`` (device, AMP, seeding,
channels_last and its CPU guard, ``torch.compile``, the folded evaluation copy), ``cpus`` (the CPU budget and
the pool of worker processes), ``runctx`` (what a launcher such as torchrun changes about how stages run).
"""
