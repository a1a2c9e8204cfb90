"""The project's own bench sections, one module each (registered in
:data:`agent.bench.BENCHES`)."""
