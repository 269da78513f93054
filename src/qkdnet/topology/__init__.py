"""The network as data: nodes, QKD-links, KM-links, domains and regions, the built-in
CN-QCN scenario, scenario files, exports and paths."""
