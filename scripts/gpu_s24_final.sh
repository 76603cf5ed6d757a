STEPS="ck eb" CKG="w4 carry norm_matmul fused matmul" EBARGS="llama2-7b int4" TAG=_ck OUT=$OUT bash scripts/gpu_s24.sh .stage/s24 2>&1 | tail -12
STEPS=eab AB_B="llama2-7b:1 llama2-7b:2" AB_OLD="SAKER_W4_TQ_ADD=6" TAG=_7b OUT=$OUT bash scripts/gpu_s24.sh .stage/s24 2>&1 | grep "^b1"
STEPS=eab AB_B="llama2-70b:2" AB_OLD="SAKER_W4_TQ_STORE=7" TAG=_70b OUT=$OUT bash scripts/gpu_s24.sh .stage/s24 2>&1 | grep "^b1"
STEPS=s9n TAG=_s9 OUT=$OUT bash scripts/gpu_s24.sh .stage/s24 2>&1 | tail -22
