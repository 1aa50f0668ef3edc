"""The application: the use cases (lifecycle, messages, git-backed steps, `coord run`,
reaping, verification, administration and the reads the commands show). Calls only
coord.events and coord.projections, and its own modules downward; the CLI calls it."""
