"""RLVR: reinforcement learning with verifiable rewards. GRPO on instructions whose verifiers run in the sandbox.

Stages (``pipeline.py``): ``00_instructions`` (instructions with verifiers x queries, the learnable-range probe,
held-out splits), ``01_grpo`` (TRL's GRPOTrainer, rewards from the sandboxed verifiers), ``02_evaluate`` (the
same rows as the other methods: IFEval, IFBench, held-out verifiers, general abilities).
"""
