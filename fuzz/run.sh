#!/usr/bin/env bash
# Runs each fuzz target for SECONDS, one after the other (make fuzz / make fuzz-smoke).
#
#   fuzz/run.sh SECONDS TARGET...
#
# Needs `cargo fuzz` on the PATH and RUSTC_BOOTSTRAP=1 (mk/hardening.mk sets both). Each target
# reads its growing corpus (fuzz/corpus/<target>, git-ignored), the committed seeds
# (fuzz/seeds/<target>) and the committed crash reproducers (fuzz/regressions/<target>): a
# regression that crashes again fails at once. One summary line per target; the libFuzzer log
# is fuzz/logs/<target>.log, a crashing input fuzz/artifacts/<target>/crash-*.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=$1
shift
mkdir -p fuzz/logs
summary=fuzz/logs/summary.txt
: > "$summary"
for t in "$@"; do
    # Largest input: a payment header is at most 16 KiB, a pass 4 KiB, a Solana packet 1232 B,
    # a SIGN-IN-WITH-X header 8 KiB.
    case $t in
        config)    max_len=8192;  dict=fuzz/dict/config.dict ;;
        payment)   max_len=20000; dict=fuzz/dict/payment.dict ;;
        x_payment) max_len=20000; dict=fuzz/dict/payment.dict ;;
        solana_tx) max_len=1400;  dict= ;;
        token)     max_len=6000;  dict=fuzz/dict/token.dict ;;
        query)     max_len=1024;  dict=fuzz/dict/query.dict ;;
        siwx)      max_len=9000;  dict=fuzz/dict/siwx.dict ;;
        evm_payment) max_len=4096; dict= ;;
        siwe)      max_len=8192;  dict= ;;
        request)   max_len=12000; dict= ;;
        *) echo "unknown fuzz target $t" >&2; exit 2 ;;
    esac
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/regressions/$t"
    log=fuzz/logs/$t.log
    if ! cargo fuzz run --fuzz-dir fuzz -O -a "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/regressions/$t" -- \
            -max_total_time="$seconds" -max_len="$max_len" ${dict:+-dict=$dict} -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 > "$log" 2>&1; then
        tail -n 60 "$log"
        echo "FAILED: fuzz target $t (log: $log; the input is under fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    awk -v t="$t" '
        /^stat::number_of_executed_units/ {n = $NF}
        /^stat::average_exec_per_sec/     {r = $NF}
        /^stat::new_units_added/          {u = $NF}
        /^stat::peak_rss_mb/              {m = $NF}
        /INITED cov:/                     {split($0, a, "cov: "); split(a[2], b, " "); c0 = b[1]}
        / cov: [0-9]+ ft:/                {split($0, a, "cov: "); split(a[2], b, " "); c = b[1]}
        END {printf "fuzz %-9s %9d execs in %ss, %6d exec/s, coverage %s -> %s, %d new units, %d MB peak: no crash\n",
                    t, n, s, r, c0, c, u, m}' s="$seconds" "$log" | tee -a "$summary"
done
