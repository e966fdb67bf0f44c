"""§6 and App. B: the GAN engine and Tables 2–8 (configuration, networks, data, training, packing, metrics, tables,
sweeps, report, chapter, protocol, GPU check)."""
