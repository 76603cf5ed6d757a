#!/bin/bash
# Decode attention against torch SDPA at group 8 and MHA (issue 3's last bar: torch is 1-3%
# ahead there, session 6): the workbench's timing with every kernel-2 configuration at split
# counts 1/2/3/4/6/8 (AD_NS; l2pf configurations left out), then torch on the same shapes, in
# one call. If a configuration beats torch on a shape in both this and a repeat, teach the
# planner (sk_attn_decode_default_cfg / sk_attn_decode_make_plan_cfg) to pick it there.
# Here: cmake --build build-gpu --target dev_attention_decode; mkdir -p .stage/sw && cp
#   build-gpu/dev_attention_decode bench/attention_decode_torch.py .stage/sw/ && strip
#   .stage/sw/dev_attention_decode
. "$(dirname "$0")/device_lib.sh"
dev_init sw "${1:-.stage/sw}"
step sweep 420 env AD_NS=1,2,3,4,6,8 AD_NO_L2PF=1 AD_NO_MQ=1 "$S/dev_attention_decode" time
grep -A18 "^SUMMARY" "$R/sweep.log"
step torch 120 python3 "$S/attention_decode_torch.py"
grep -A12 "^SUMMARY" "$R/torch.log"
echo "done (+$(( $(date +%s) - T0 )) s)"
