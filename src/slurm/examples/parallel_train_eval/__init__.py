"""The parallel train + eval tutorial (docs: spec/parallel-train-eval-tutorial)."""
