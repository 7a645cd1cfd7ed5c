"""Example families built with the processor kit; ``provenance`` is documented in
docs/families.md and docs/processor-kit.md."""
