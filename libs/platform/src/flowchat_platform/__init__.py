"""FlowChat's shared service infrastructure (imported, never run)."""
