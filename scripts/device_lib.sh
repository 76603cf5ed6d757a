#!/bin/bash
# Helpers shared by the device scripts (source it): dev_init NAME STAGE sets S (the staged
# binaries), R (/tmp/NAME, the logs), OUT (what comes back: NAME.tgz), LD_LIBRARY_PATH and T0;
# step NAME TIMEOUT CMD... runs CMD under timeout into $R/NAME.log, prints its exit status, the
# elapsed time and the log's last lines matching $STEP_PATTERN, and repacks $OUT/NAME.tgz (so a
# call cut short still returns what ran).
STEP_PATTERN=${STEP_PATTERN:-"FAIL\|RESULT\|checks,\|runs,\|^| [0-9]"}
dev_init() {
    DEV_NAME=$1
    S=$PWD/$2
    R=/tmp/$DEV_NAME
    OUT=${OUT:-/tmp/${DEV_NAME}_out}
    rm -rf "$R" && mkdir -p "$R" "$OUT"
    export LD_LIBRARY_PATH=$S:/usr/local/cuda/lib64 PATH=$PATH:/usr/local/cuda/bin
    T0=$(date +%s)
}
pack() { tar czf "$OUT/$DEV_NAME.tgz" -C /tmp "$DEV_NAME"; }
step() { # name timeout-s cmd...
    local name=$1 to=$2
    shift 2
    timeout "$to" "$@" > "$R/$name.log" 2>&1
    echo "$name rc=$? (+$(( $(date +%s) - T0 )) s): $(grep -h "$STEP_PATTERN" "$R/$name.log" | tail -3 | tr '\n' ' ')"
    pack
}
# dev_unpack TGZ: when the staged binaries come as $S/TGZ, unpacks them to /tmp/${DEV_NAME}_bin
# and points S and LD_LIBRARY_PATH there (call after dev_init).
dev_unpack() {
    if [ -f "$S/$1" ]; then
        mkdir -p "/tmp/${DEV_NAME}_bin" && tar xf "$S/$1" -C "/tmp/${DEV_NAME}_bin" || exit 1
        S=/tmp/${DEV_NAME}_bin
        export LD_LIBRARY_PATH=$S:$LD_LIBRARY_PATH
    fi
}
# dev_b1 NAME SHAPE BATCH ENV...: saker bench on the INT4 synthetic SHAPE at BATCH rows, 128/256,
# with ENV, into $R/b1_NAME.log; prints its output tok/s and ITL p50 (ms) and repacks.
dev_b1() {
    local name=$1 shape=$2 b=$3
    shift 3
    timeout "${B1_TO:-300}" env "$@" "${SAKER_BIN:-$S/saker}" bench --device cuda --shape "$shape" --weights "${B1_W:-int4}" --batch "$b" \
        --isl 128 --osl 256 > "$R/b1_$name.log" 2>&1
    echo "b1_$name rc=$? (+$(( $(date +%s) - T0 )) s) $shape b$b $*: $(grep -h '^| 128' "$R/b1_$name.log" | cut -d'|' -f6,11)"
    pack
}
# dev_eab OLD: two rounds of, for each MODEL:BATCH of $AB_B, dev_b1 under OLD (or $AB_OLD), under
# the default (SAKER_NOOP=1) and under each variant of $AB_V (its variables joined by +).
dev_eab() {
    local round mb m b v
    for round in 1 2; do
        for mb in $AB_B; do
            m=${mb%%:*} b=${mb##*:}
            dev_b1 ${m}_b${b}_old_r$round $m $b ${AB_OLD:-$1}
            dev_b1 ${m}_b${b}_new_r$round $m $b SAKER_NOOP=1
            for v in $AB_V; do dev_b1 ${m}_b${b}_${v//[=,+]/_}_r$round $m $b ${v//+/ }; done
        done
    done
}
