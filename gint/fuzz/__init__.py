"""Bytecode fuzzing: random and mutated programs against the reference machine.

``gint.fuzz.reference`` is an independent model of the machine (the oracle);
``gint.fuzz.programs`` makes random programs, mutates them and lays out tensors with
canary bytes around them; ``python -m gint.fuzz --cases N`` runs them: each program is
rejected by the verifier naming its rule, or runs to the reference's result with no
access outside its tensors.
"""
