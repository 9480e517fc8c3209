"""The paper's experiments built on the protocol and on training: Table 1, the ablation study, model cards."""
