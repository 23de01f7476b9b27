"""FSDP2 with bf16 parameters and (by default) bf16 gradient reduction."""

import torch
from torch import nn
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

model = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 1))
policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16)  # bf16-gradient-reduce
for layer in model:
    fully_shard(layer, mp_policy=policy)
fully_shard(model, mp_policy=policy)
