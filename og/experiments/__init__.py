"""The offline experiments: `quickstart` (the paper's experiment in miniature), `ablate` (a grid of
variants x seeds, with its report and charts), and the encoder probe and frontier built on them."""
