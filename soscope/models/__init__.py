"""The probabilistic model: encoder, decoders, likelihoods and losses — plain torch."""
