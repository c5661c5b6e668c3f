"""Hand-written CPU kernels the models train with: building blocks, not registered models.

- fused_conv: convolution, bias and ReLU as one oneDNN call and one autograd node (the conv models);
- gru: a fused bidirectional GRU layer for CPU training (text-seed's encoder);
- lstm: a one-layer LSTM with bf16 products, fp32 gates and its own backward pass (text-rnn's decoder).

Each computes the same function as the torch layer it replaces (tests/kernels check it) and is
only faster on the paths measured in bench/RESULTS.md.
"""
