"""What the stages do, as library functions (the stages only wire them to DVC): load the inputs
(``inputs``), draw tickets (``tickets``), run one transfer (``transfer``), evaluate one run (``evaluate``),
collect the evaluated runs (``results``). Submodules are imported on use: an evaluating stage never loads
the training stack."""
