"""§6 and App. B: the GAN engine and Tables 2–8 (configuration, networks, data, training, packing, metrics, tables,
sweeps, the propositions and their rule, report, protocol, GPU check)."""
