"""Writing workflows rather than running them: the step graph drawn (Mermaid, DOT)
and the workflow templates shipped with Ownly."""
