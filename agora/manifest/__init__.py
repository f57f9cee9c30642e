"""The marketplace manifest (DESIGN.md): parse, check every problem, apply in one transaction."""
