"""Core: profiles, paths, atomic writes, the cost meter, progress lines,
results records."""
