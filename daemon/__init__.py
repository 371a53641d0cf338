"""cronstack engine: loading, compiling, scheduling and running function stacks."""
